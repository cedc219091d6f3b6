"""Training rows for the confirm model: past candidates, their window's flow, their outcome.

Each row is produced by the service's own state machine: a
:class:`~decile.confirm.window.Window` opened at the candidate's bar close,
fed the bars the bus would have delivered, and asked for
:meth:`~decile.confirm.window.Window.features`. So the training features are
the serving features by construction, and a window the service would have
vetoed as stale (incomplete) is no training row either.

The label is ``realised_r >= theta``. ``outcomes`` must be the R of the trade
entered AT THE DECISION (after the window, as execution does): an R measured
from the candidate's own entry already contains the window's move, and a model
trained on it would learn the window, not the future.

The split is chronological only (:func:`confirm_split`, reusing
:func:`decile.training.split.chronological_split`), on the decision time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from decile.confirm.config import ConfirmConfig
from decile.confirm.decide import atr_pct
from decile.confirm.flow import FLOW_FEATURES, FLOW_SCHEMA_VERSION
from decile.confirm.window import Window, flow_bars, from_ms
from decile.events.signals import CandidateSignal
from decile.market.bars import Bars
from decile.market.timeframes import parse, to_ms
from decile.training.split import Split, chronological_split

__all__ = [
    "ConfirmDataset",
    "atr_edges",
    "build_confirm_dataset",
    "confirm_fingerprint",
    "confirm_split",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ConfirmDataset:
    """Rows ``x`` (columns :data:`FLOW_FEATURES`) and labels ``y = realised_r >= theta``.

    ``ts`` is each row's decision time (the window's end, ms): what the split
    cuts on. ``tf`` is the candidates' timeframe (one per dataset: the
    embargo is counted in its bars). ``counts`` records what was dropped and
    why: ``candidates`` (given), ``duplicates`` (same id again),
    ``no_outcome`` (no finite R: never traded), ``incomplete_window`` (the
    bars would not have completed it: stale in serving), ``rows`` (kept).
    """

    x: F64
    y: npt.NDArray[np.int8]
    realised_r: F64
    ts: npt.NDArray[np.int64]
    atr_bucket: npt.NDArray[np.int64]
    candidate_ids: tuple[str, ...]
    tf: str
    theta: float
    flow_params: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    feature_names: tuple[str, ...] = FLOW_FEATURES
    schema_version: str = FLOW_SCHEMA_VERSION

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def bar_ms(self) -> int:
        """Length of one candidate bar (ms): the unit of the embargo."""
        return parse(self.tf).ms


def atr_edges(
    candidates: Iterable[CandidateSignal], quantiles: Sequence[float] = (1 / 3, 2 / 3)
) -> tuple[float, ...]:
    """ATR-% bucket edges at ``quantiles`` (terciles by default) of ``candidates``.

    Compute them on the training period only and put them in the
    :class:`~decile.confirm.config.ConfirmConfig` before building the dataset:
    the bucket is a feature, so the edges are part of the model.
    """
    pct = np.array([atr_pct(c) for c in candidates], dtype=np.float64)
    if len(pct) == 0:
        raise ValueError("no candidates to cut ATR buckets from")
    edges = np.unique(np.round(np.quantile(pct, list(quantiles)), 6))
    return tuple(float(e) for e in edges if e > 0)


def _symbol_slices(bars: Bars) -> tuple[Bars, dict[str, tuple[int, int]]]:
    """Bars in ``(symbol, ts)`` order and each symbol's row range in it."""
    sb = bars.take(np.lexsort((bars.ts, bars.code)))
    codes = np.arange(len(sb.symbols))
    lo = np.searchsorted(sb.code, codes, side="left")
    hi = np.searchsorted(sb.code, codes, side="right")
    return sb, {s: (int(a), int(b)) for s, a, b in zip(sb.symbols, lo, hi, strict=True)}


def build_confirm_dataset(
    candidates: Iterable[CandidateSignal],
    outcomes: Mapping[str, float],
    bars: Bars,
    config: ConfirmConfig,
    *,
    theta: float = 0.0,
    htf_trend_pct: Mapping[str, float] | None = None,
) -> ConfirmDataset:
    """Rows for ``candidates`` that have an outcome and a complete window in ``bars``.

    ``outcomes`` and ``htf_trend_pct`` are keyed on the candidate id;
    ``bars``: ``config.window_tf`` bars of the candidates' symbols (any row
    order) covering each window and its baseline. Rows are in decision-time order.
    """
    if not math.isfinite(theta):
        raise ValueError(f"theta must be finite, got {theta}")
    htf = htf_trend_pct or {}
    sb, ranges = _symbol_slices(bars)
    tf_ms = config.window_tf.ms
    counts = {"candidates": 0, "duplicates": 0, "no_outcome": 0, "incomplete_window": 0}
    seen: set[str] = set()
    tfs: set[str] = set()
    rows: list[tuple[int, str, F64, float, int]] = []
    for c in candidates:
        counts["candidates"] += 1
        if c.id in seen:
            counts["duplicates"] += 1
            continue
        seen.add(c.id)
        tfs.add(c.tf)
        r = outcomes.get(c.id)
        if r is None or not math.isfinite(r):
            counts["no_outcome"] += 1
            continue
        close_ms = to_ms(c.bar_time) + parse(c.tf).ms
        a, b = ranges.get(c.symbol, (0, 0))
        ts = sb.ts[a:b]
        lo = a + int(np.searchsorted(ts, close_ms - (config.baseline_bars + 1) * tf_ms))
        hi = a + int(np.searchsorted(ts, close_ms + (config.window_bars + 1) * tf_ms))
        window = Window.open(
            c, config, opened_at=from_ms(close_ms), history=flow_bars(sb.slice(lo, hi))
        )
        if not window.complete:
            counts["incomplete_window"] += 1
            continue
        x = window.features(config, htf.get(c.id))
        rows.append((window.end_ms, c.id, x, float(r), config.bucket(atr_pct(c))))
    if len(tfs) > 1:
        raise ValueError(f"candidates of one timeframe per dataset, got {sorted(tfs)}")
    rows.sort(key=lambda row: row[0])  # stable: equal times keep their input order
    realised = np.array([row[3] for row in rows], dtype=np.float64)
    counts["rows"] = len(rows)
    return ConfirmDataset(
        x=np.array([row[2] for row in rows], dtype=np.float64).reshape(-1, len(FLOW_FEATURES)),
        y=(realised >= theta).astype(np.int8),
        realised_r=realised,
        ts=np.array([row[0] for row in rows], dtype=np.int64),
        atr_bucket=np.array([row[4] for row in rows], dtype=np.int64),
        candidate_ids=tuple(row[1] for row in rows),
        tf=next(iter(tfs)) if tfs else "5m",
        theta=float(theta),
        flow_params=config.flow_params(),
        counts=counts,
    )


def confirm_split(
    ds: ConfirmDataset,
    *,
    horizon: int = 6,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    embargo_bars: int | None = None,
) -> Split:
    """Train / validation / test by decision time, embargoed by the trade horizon.

    ``horizon``: the longest a confirmed trade stays open, in candidate bars
    (the paper broker's timeout, 6 by default): a training trade must have
    closed before validation starts.
    """
    return chronological_split(
        ds.ts, horizon=horizon, bar_ms=ds.bar_ms, fractions=fractions, embargo_bars=embargo_bars
    )


def confirm_fingerprint(ds: ConfirmDataset) -> str:
    """sha256 hex of the dataset's content: rows, labels, times, names and flow settings."""
    h = hashlib.sha256(b"decile-confirm-dataset-v1\0")
    for name in ("x", "y", "realised_r", "ts", "atr_bucket"):
        a = np.ascontiguousarray(getattr(ds, name))
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    meta = {
        "feature_names": list(ds.feature_names),
        "schema_version": ds.schema_version,
        "tf": ds.tf,
        "theta": ds.theta,
        "flow_params": ds.flow_params,
        "candidate_ids": list(ds.candidate_ids),
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()
