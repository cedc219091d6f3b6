"""Chronological splits with an embargo; there is deliberately no random split.

Boundaries are cut on bar time (all symbols together), at the 70% and 85%
quantiles of the distinct timestamps by default. A row belongs to a block
only if its whole label window (``ts + embargo``) ends before the next block
starts, so no training label overlaps validation or test prices; the
embargo is at least the label horizon (``ValueError`` otherwise).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Split", "chronological_split", "walk_forward"]

Idx = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """Row indices per block and the boundary times (ms): validation starts at
    ``val_start``, test at ``test_start``. ``embargo_ms`` is the gap enforced
    before each boundary; ``dropped`` counts rows lost to it."""

    train: Idx
    validation: Idx
    test: Idx
    val_start: int
    test_start: int
    embargo_ms: int
    dropped: int

    def describe(self) -> dict[str, Any]:
        return {
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "test_rows": len(self.test),
            "val_start_ms": self.val_start,
            "test_start_ms": self.test_start,
            "embargo_ms": self.embargo_ms,
            "embargo_dropped": self.dropped,
        }


def _cut(
    t: npt.NDArray[np.int64],
    lo: int | None,
    val_start: int,
    test_start: int,
    end: int | None,
    embargo_ms: int,
) -> Split:
    start = np.iinfo(np.int64).min if lo is None else lo
    stop = np.iinfo(np.int64).max if end is None else end
    train = np.flatnonzero((t >= start) & (t + embargo_ms < val_start))
    val = np.flatnonzero((t >= val_start) & (t + embargo_ms < test_start))
    test = np.flatnonzero((t >= test_start) & (t < stop))
    inside = int(((t >= start) & (t < stop)).sum())
    return Split(
        train.astype(np.int64),
        val.astype(np.int64),
        test.astype(np.int64),
        int(val_start),
        int(test_start),
        embargo_ms,
        inside - len(train) - len(val) - len(test),
    )


def _check(horizon: int, embargo_bars: int | None, bar_ms: int) -> int:
    emb = horizon if embargo_bars is None else embargo_bars
    if emb < horizon:
        raise ValueError(f"embargo {emb} bars is shorter than the label horizon {horizon}")
    if bar_ms <= 0:
        raise ValueError("bar_ms must be > 0")
    return emb * bar_ms


def chronological_split(
    ts: npt.ArrayLike,
    *,
    horizon: int,
    bar_ms: int,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    embargo_bars: int | None = None,
) -> Split:
    """Train / validation / test by time, with ``embargo_bars`` (default ``horizon``) gaps."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError("fractions must be three positive numbers summing to 1")
    embargo_ms = _check(horizon, embargo_bars, bar_ms)
    t = np.asarray(ts, dtype=np.int64)
    u = np.unique(t)
    if len(u) < 3:
        raise ValueError("need at least 3 distinct timestamps to split")
    i1 = int(len(u) * fractions[0])
    i2 = int(len(u) * (fractions[0] + fractions[1]))
    return _cut(t, None, int(u[i1]), int(u[min(i2, len(u) - 1)]), None, embargo_ms)


def walk_forward(
    ts: npt.ArrayLike,
    *,
    horizon: int,
    bar_ms: int,
    n_windows: int = 4,
    min_train_fraction: float = 0.4,
    embargo_bars: int | None = None,
) -> list[Split]:
    """Expanding-window folds: train on everything before fold ``k``, validate
    on the first half of fold ``k``, test on its second half; embargoed like
    :func:`chronological_split`."""
    if n_windows < 1 or not 0 < min_train_fraction < 1:
        raise ValueError("n_windows >= 1 and 0 < min_train_fraction < 1")
    embargo_ms = _check(horizon, embargo_bars, bar_ms)
    t = np.asarray(ts, dtype=np.int64)
    u = np.unique(t)
    edges = np.linspace(min_train_fraction, 1.0, n_windows + 1)
    out = []
    for a, b in itertools.pairwise(edges):
        i0, i2 = int(len(u) * a), min(int(len(u) * b), len(u))
        i1 = (i0 + i2) // 2
        if not 0 < i0 < i1 < i2:
            raise ValueError("too few timestamps for that many windows")
        end = None if i2 >= len(u) else int(u[i2])
        out.append(_cut(t, None, int(u[i0]), int(u[i1]), end, embargo_ms))
    return out
