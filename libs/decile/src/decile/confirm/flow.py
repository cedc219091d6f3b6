"""Flow features of a confirmation window: defined once, used by training and serving.

:func:`flow_features` is the only definition. The training dataset builder
(:func:`decile.confirm.dataset.build_confirm_dataset`) reaches it through the
same :class:`~decile.confirm.window.Window` the service keeps, so a trained
model and the live service see the same numbers for the same bars.

Every feature is signed by the candidate's side, so "favourable" is always
positive and one model serves longs and shorts. Every feature is finite:
where a value is undefined (empty window, too short a baseline, no higher-tf
input) it takes its neutral value, listed in :data:`FLOW_SPECS`. A logistic
model cannot take NaN, and a silent NaN would veto or approve by accident.

:data:`FLOW_SCHEMA_VERSION` is derived from the ordered names and
:data:`FLOW_CODE_VERSION` (bump it when a formula changes); a unit test pins
the written-out string to the derivation, as for the feature schema.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.confirm.config import ConfirmConfig
from decile.events.base import Rejection
from decile.events.signals import CandidateSignal
from decile.market.bars import Bars
from decile.reasons import ReasonCode

__all__ = [
    "FLOW_CODE_VERSION",
    "FLOW_FEATURES",
    "FLOW_SCHEMA_VERSION",
    "FLOW_SPECS",
    "HTF_TREND_FEATURE",
    "MIN_BASELINE_BARS",
    "Z_CLIP",
    "FlowSpec",
    "derive_flow_version",
    "flow_features",
    "flow_mismatch",
]

F64 = npt.NDArray[np.float64]

FLOW_CODE_VERSION: Final = "c1"
Z_CLIP: Final = 10.0
"""Every unbounded feature is clipped to +-10: one thin-volume baseline must not dominate a fit."""
MIN_BASELINE_BARS: Final = 3
"""Fewest baseline bars for the z-scores (3 closes give the 2 returns a std needs)."""
HTF_TREND_FEATURE: Final = "h1_trend_20"
"""The feature-schema column the higher-timeframe input is read from, at the candidate's bar."""


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """One flow feature: name, meaning (units included), and its value when undefined."""

    name: str
    description: str
    neutral: float


FLOW_SPECS: Final[tuple[FlowSpec, ...]] = (
    FlowSpec("px_vs_entry_atr", "side * (last window close - entry) / ATR", 0.0),
    FlowSpec(
        "frac_favourable",
        "share of window bars closing on the candidate's side of entry (ties are not), 0..1",
        0.5,
    ),
    FlowSpec(
        "vol_spike_z",
        "(mean window volume - mean baseline volume) / baseline volume std, +-10",
        0.0,
    ),
    FlowSpec(
        "ret_z",
        "side * log(last close / entry) / (baseline 1-bar log-return std * sqrt(n)), +-10",
        0.0,
    ),
    FlowSpec("atr_bucket", "ATR bucket of ATR % of entry under the config's edges, 0..k", 0.0),
    FlowSpec(
        "htf_bias_atr",
        f"side * {HTF_TREND_FEATURE} (log(1h close / EMA20), %) / ATR % of entry, +-10",
        0.0,
    ),
)
FLOW_FEATURES: Final[tuple[str, ...]] = tuple(s.name for s in FLOW_SPECS)


def derive_flow_version(
    names: Sequence[str] = FLOW_FEATURES, code_version: str = FLOW_CODE_VERSION
) -> str:
    """``<code_version>-<12 hex>`` of the ordered names: a reordering is a new version."""
    doc = {"code": code_version, "features": list(names)}
    digest = hashlib.sha256(json.dumps(doc).encode()).hexdigest()
    return f"{code_version}-{digest[:12]}"


FLOW_SCHEMA_VERSION: Final = "c1-26f7aa780a85"


def _clip(v: float) -> float:
    return float(min(max(v, -Z_CLIP), Z_CLIP))


def _ordered(bars: Bars) -> tuple[F64, F64]:
    """Closes and volumes in bar-time order (a window may have been filled out of order)."""
    order = np.argsort(bars.ts, kind="stable")
    return np.asarray(bars.close[order]), np.asarray(bars.volume[order])


def flow_features(
    candidate: CandidateSignal,
    window: Bars,
    htf_trend_pct: float | None,
    *,
    baseline: Bars,
    atr_edges: Sequence[float],
) -> F64:
    """The :data:`FLOW_FEATURES` row of one candidate, float64, always finite.

    ``window``: the candidate symbol's bars of the window timeframe that
    opened at or after the candidate's bar close (any order). ``baseline``:
    the bars just before the window, the reference for the two z-scores.
    ``htf_trend_pct``: :data:`HTF_TREND_FEATURE` of the candidate's bar, or
    None when unknown. ``atr_edges``: the config's bucket edges (ATR %).
    """
    side = 1.0 if candidate.side == "long" else -1.0
    entry, atr = candidate.entry_price, candidate.atr
    atr_pct = 100.0 * atr / entry
    neutral = [s.neutral for s in FLOW_SPECS]
    px_vs_entry, frac, vol_z, ret_z = neutral[:4]

    closes, volumes = _ordered(window)
    base_close, base_vol = _ordered(baseline)
    n = len(closes)
    last = float(closes[-1]) if n else entry
    if n:
        px_vs_entry = _clip(side * (last - entry) / atr)
        frac = float(np.mean(side * (closes - entry) > 0))
    if n and len(base_vol) >= MIN_BASELINE_BARS:
        with np.errstate(all="ignore"):  # a bad bar gives NaN here, replaced below
            sd = float(np.std(base_vol, ddof=1))
            if sd > 0:
                vol_z = _clip((float(volumes.mean()) - float(base_vol.mean())) / sd)
            sd_r = float(np.std(np.diff(np.log(base_close)), ddof=1))
            if sd_r > 0:
                move = float(np.log(last / entry))
                ret_z = _clip(side * move / (sd_r * math.sqrt(n)))
    bucket = float(np.searchsorted(np.asarray(atr_edges, dtype=np.float64), atr_pct, side="right"))
    htf = neutral[5]
    if htf_trend_pct is not None and math.isfinite(htf_trend_pct):
        htf = _clip(side * htf_trend_pct / atr_pct)
    out = np.array([px_vs_entry, frac, vol_z, ret_z, bucket, htf], dtype=np.float64)
    if not np.isfinite(out).all():  # a non-finite bar value (quarantine's job) must not leak
        bad = ~np.isfinite(out)
        out[bad] = np.asarray(neutral)[bad]
    return out


def flow_mismatch(config: ConfirmConfig, metrics: Mapping[str, Any]) -> Rejection | None:
    """``None`` when a confirm model's ``metrics.json`` was trained on this config's flow.

    The features, their version and the flow settings (window, its timeframe,
    baseline, ATR edges) must all match: the same numbers under another window
    length mean something else, and the model would score them without complaint.
    """
    expected = {
        "features": list(FLOW_FEATURES),
        "schema_version": FLOW_SCHEMA_VERSION,
        "flow_params": config.flow_params(),
    }
    got = {k: metrics.get(k) for k in expected}
    if got == expected:
        return None
    differs = sorted(k for k in expected if got[k] != expected[k])
    return Rejection(
        gate="confirm_flow",
        code=ReasonCode.FEATURE_SCHEMA_MISMATCH,
        values={
            "differs": ",".join(differs),
            "expected_schema": FLOW_SCHEMA_VERSION,
            "got_schema": str(got["schema_version"]),
        },
        detail=f"model flow {json.dumps(got, default=str)[:200]} "
        f"!= config flow {json.dumps(expected)[:200]}",
    )
