"""Feature health: refuse a feature matrix with dead columns before a model learns from it.

The system Decile replaces trained on 18 features of which 12 were constant:
nobody looked. Training calls :func:`check_health` on its matrix and fails on
any rejection; the feature service runs it on a rolling window of published
rows and exports :func:`feature_stats` as metrics. A column is judged on its
finite values only (NaN is warm-up or missing input; infinity never leaves
the engines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from decile.events.base import Rejection
from decile.reasons import ReasonCode

__all__ = ["DEFAULT_MAX_NULL_RATE", "FeatureStats", "check_health", "feature_stats"]

DEFAULT_MAX_NULL_RATE: Final = 0.05
"""After warm-up a real feature is missing in well under 5% of rows (zero-volume
bars, a reference symbol's outage); more means an input or a definition broke."""
GATE: Final = "feature_health"


@dataclass(frozen=True, slots=True)
class FeatureStats:
    """One column's health figures (``min``/``max`` over finite values, NaN if none)."""

    name: str
    rows: int
    finite: int
    null_rate: float
    min: float
    max: float

    @property
    def constant(self) -> bool:
        return self.finite > 0 and self.min == self.max


def feature_stats(matrix: npt.ArrayLike, names: Sequence[str]) -> list[FeatureStats]:
    """Per-column counts and range, vectorised over columns (one pass per statistic)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(names):
        raise ValueError(f"matrix of shape {m.shape} does not have {len(names)} columns")
    rows = m.shape[0]
    fin = np.isfinite(m)
    finite = fin.sum(axis=0)
    with np.errstate(invalid="ignore"):
        lo = np.where(fin, m, np.inf).min(axis=0, initial=np.inf)
        hi = np.where(fin, m, -np.inf).max(axis=0, initial=-np.inf)
    lo = np.where(finite > 0, lo, np.nan)
    hi = np.where(finite > 0, hi, np.nan)
    null = 1.0 - finite / rows if rows else np.ones(len(names))
    return [
        FeatureStats(str(n), rows, int(f), float(r), float(a), float(b))
        for n, f, r, a, b in zip(names, finite, null, lo, hi, strict=True)
    ]


def check_health(
    matrix: npt.ArrayLike,
    names: Sequence[str],
    *,
    max_null_rate: float = DEFAULT_MAX_NULL_RATE,
) -> list[Rejection]:
    """One rejection per failing column; an empty list means healthy.

    ``FEATURE_ALL_NULL``: no finite value at all (it is then not also reported
    constant or null-rate). ``FEATURE_CONSTANT``: every finite value equal.
    ``FEATURE_NULL_RATE``: more than ``max_null_rate`` of rows missing. Pass
    rows after warm-up: warm-up NaN is expected, not a fault.
    """
    if not 0.0 <= max_null_rate <= 1.0:
        raise ValueError(f"max_null_rate must be in [0, 1], got {max_null_rate}")
    out: list[Rejection] = []
    for st in feature_stats(matrix, names):
        if st.finite == 0:
            out.append(
                Rejection(
                    gate=GATE,
                    code=ReasonCode.FEATURE_ALL_NULL,
                    values={"feature": st.name, "rows": st.rows},
                )
            )
            continue
        if st.constant:
            out.append(
                Rejection(
                    gate=GATE,
                    code=ReasonCode.FEATURE_CONSTANT,
                    values={"feature": st.name, "value": st.min, "rows": st.finite},
                )
            )
        if st.null_rate > max_null_rate:
            out.append(
                Rejection(
                    gate=GATE,
                    code=ReasonCode.FEATURE_NULL_RATE,
                    values={
                        "feature": st.name,
                        "null_rate": round(st.null_rate, 6),
                        "limit": max_null_rate,
                    },
                )
            )
    return out
