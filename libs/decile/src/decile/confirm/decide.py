"""Approve, invert or veto a candidate: its one ``ConfirmDecision``.

Exactly one decision exists per candidate, whatever path reaches it: the id is
derived from the candidate's id and the event type only (not from the verdict),
so a candidate redelivered after a restart, decided stale the second time,
still yields the id of the first decision and the bus drops the copy.
``ts_event`` is the decision time the caller passes, so the same inputs give
the same event to the byte.

A refusal is an event, never an exception (STYLE habit 7): a low probability
vetoes with ``CONFIRM_LOW_PROBABILITY``, an expired window with
``CONFIRM_STALE_WINDOW``, a model output that is not a probability with
``MODEL_NON_FINITE_OUTPUT``, a complete window with no model to score it
(when the service is told to veto then) with ``CONFIRM_NO_MODEL``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from decile.confirm.config import ConfirmConfig
from decile.confirm.flow import FLOW_FEATURES
from decile.confirm.window import Window
from decile.events.base import Rejection, Scalar
from decile.events.signals import CandidateSignal, ConfirmDecision, Side
from decile.reasons import ReasonCode

__all__ = [
    "GATE_MODEL",
    "GATE_PROBABILITY",
    "GATE_WINDOW",
    "atr_pct",
    "decide",
    "no_model",
    "stale",
]

GATE_PROBABILITY: Final = "confirm_probability"
GATE_WINDOW: Final = "confirm_window"
GATE_MODEL: Final = "confirm_model"
_OTHER: Final[dict[Side, Side]] = {"long": "short", "short": "long"}


def atr_pct(candidate: CandidateSignal) -> float:
    """The candidate's ATR as % of its entry price: what the buckets are cut on."""
    return 100.0 * candidate.atr / candidate.entry_price


def _event(
    candidate: CandidateSignal, decided_at: datetime, producer: str, **fields: object
) -> ConfirmDecision:
    return candidate.follow(
        ConfirmDecision,
        candidate=candidate,
        decided_at=decided_at,
        ts_event=decided_at,
        producer=producer,
        **fields,
    )


def _flow(features: npt.ArrayLike) -> dict[str, float]:
    x = np.asarray(features, dtype=np.float64).reshape(-1)
    if len(x) != len(FLOW_FEATURES) or not np.isfinite(x).all():
        raise ValueError(f"features must be {len(FLOW_FEATURES)} finite flow values, got {x}")
    return dict(zip(FLOW_FEATURES, x.tolist(), strict=True))


def decide(
    candidate: CandidateSignal,
    features: npt.ArrayLike,
    model_p: float,
    config: ConfirmConfig,
    *,
    decided_at: datetime,
    model_version: str = "",
    window_bars: int = 0,
    fill_price_hint: float | None = None,
    producer: str = "confirm",
) -> ConfirmDecision:
    """The decision for a complete window scored ``model_p`` (calibrated P(R >= theta)).

    ``features``: the :data:`~decile.confirm.flow.FLOW_FEATURES` row the model
    scored (recorded in ``flow``). Approve when ``p >= approve_at[bucket]``;
    with inversion on, invert (trade the other side) when ``p <=
    invert_at[bucket]``; else veto. ``ValueError`` for a row of the wrong
    width or with a non-finite value: that is a caller bug, not a market fact.
    """
    flow = _flow(features)
    pct = atr_pct(candidate)
    bucket = config.bucket(pct)
    approve_at, invert_at = config.thresholds(bucket)
    common: dict[str, object] = {
        "atr_bucket": bucket,
        "window_bars": window_bars,
        "flow": flow,
        "model_version": model_version,
        "fill_price_hint": fill_price_hint,
    }
    p = float(model_p)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        reason = Rejection(
            gate=GATE_MODEL,
            code=ReasonCode.MODEL_NON_FINITE_OUTPUT,
            values={"p_confirm": str(p), "model_version": model_version},
            detail="the confirm model returned no probability",
        )
        return _event(
            candidate, decided_at, producer, decision="veto", side=candidate.side,
            reason=reason, **common,
        )
    if p >= approve_at:
        return _event(
            candidate, decided_at, producer, decision="approve", side=candidate.side,
            p_confirm=p, **common,
        )
    if invert_at is not None and p <= invert_at:
        return _event(
            candidate, decided_at, producer, decision="invert", side=_OTHER[candidate.side],
            p_confirm=p, **common,
        )
    values: dict[str, Scalar] = {
        "p_confirm": p,
        "approve_at": approve_at,
        "atr_bucket": bucket,
        "atr_pct": pct,
    }
    if invert_at is not None:
        values["invert_at"] = invert_at
    reason = Rejection(
        gate=GATE_PROBABILITY, code=ReasonCode.CONFIRM_LOW_PROBABILITY, values=values
    )
    return _event(
        candidate, decided_at, producer, decision="veto", side=candidate.side,
        p_confirm=p, reason=reason, **common,
    )


def no_model(
    candidate: CandidateSignal,
    features: npt.ArrayLike,
    config: ConfirmConfig,
    *,
    approve: bool,
    decided_at: datetime,
    window_bars: int = 0,
    fill_price_hint: float | None = None,
    producer: str = "confirm",
) -> ConfirmDecision:
    """The decision for a complete window when no confirm model is usable.

    ``approve`` True passes the candidate on unscored (``p_confirm`` None,
    ``model_version`` ""): a first fleet has no trade outcomes to train a
    confirm model on, and vetoing everything would never produce any. False
    vetoes with ``CONFIRM_NO_MODEL``. The flow row is recorded either way, so
    unscored decisions still show what a model would have seen.
    """
    flow = _flow(features)
    common: dict[str, object] = {
        "atr_bucket": config.bucket(atr_pct(candidate)),
        "window_bars": window_bars,
        "flow": flow,
        "fill_price_hint": fill_price_hint,
    }
    if approve:
        return _event(
            candidate, decided_at, producer, decision="approve", side=candidate.side, **common
        )
    reason = Rejection(
        gate=GATE_MODEL,
        code=ReasonCode.CONFIRM_NO_MODEL,
        values={"window_bars": window_bars},
        detail="no usable confirm model is loaded",
    )
    return _event(
        candidate, decided_at, producer, decision="veto", side=candidate.side, reason=reason,
        **common,
    )


def stale(
    window: Window,
    config: ConfirmConfig,
    now: datetime,
    *,
    model_version: str = "",
    producer: str = "confirm",
) -> ConfirmDecision:
    """The veto of a window that expired incomplete (``CONFIRM_STALE_WINDOW``).

    No model is consulted: the features of a partial window are not the ones
    the model was trained on.
    """
    c = window.candidate
    reason = Rejection(
        gate=GATE_WINDOW,
        code=ReasonCode.CONFIRM_STALE_WINDOW,
        values={
            "bars_seen": len(window.bars),
            "bars_needed": window.need,
            "window_tf": window.tf.value,
            "deadline": window.deadline.isoformat(),
            "waited_s": (now - window.opened_at).total_seconds(),
        },
    )
    return _event(
        c, now, producer, decision="veto", side=c.side, reason=reason,
        atr_bucket=config.bucket(atr_pct(c)), window_bars=len(window.bars),
        model_version=model_version,
    )
