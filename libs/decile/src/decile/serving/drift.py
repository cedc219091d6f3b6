"""Feature drift: PSI of the rows recently scored against the training reference.

The reference is ``metrics.json["reference_distributions"]``: per model input
column, the train block's quantiles at ``levels`` (0.01 ... 0.99) over its
finite values, and its null rate. Those cut points make the bins:
``(-inf, q1], (q1, q2], ..., (q9, +inf)`` plus a bin for NaN, with expected
shares ``(1 - null_rate) * (level_i - level_{i-1})`` (levels padded with 0
and 1) and ``null_rate``. PSI = ``sum((a - e) * ln(a / e))`` over the bins,
``a`` the window's shares; both floored at ``eps`` so an empty bin counts
finitely instead of as infinity.

Feed it the model input rows (``CycleScores.x``), not every symbol's feature
row: the reference was taken over training *proposals*, and the rules select
on the features (a reversion proposal has an extreme RSI), so all rows would
"drift" from it by construction.

A column whose cut points are not strictly increasing (a point mass: ``side``,
``strategy_code``, a mostly-constant feature) is not monitored and is listed
in :attr:`PsiMonitor.skipped`: nine quantiles cannot say how much mass sits on
a tied value, and PSI would then report drift on identical data.

DESIGN's retraining trigger is PSI > 0.2 on any feature (``FEATURE_DRIFT``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.events.base import Rejection
from decile.reasons import ReasonCode

__all__ = ["DRIFT_THRESHOLD", "PsiMonitor"]

F64 = npt.NDArray[np.float64]
DRIFT_THRESHOLD: Final = 0.2
EPS: Final = 1e-4


def _cut_points(entry: Any, n_levels: int) -> tuple[F64 | None, float, str]:
    """(strictly increasing cut points or None, null rate, why not monitored)."""
    if not isinstance(entry, Mapping):
        return None, 0.0, "NO_REFERENCE"
    qs = entry.get("quantiles")
    if not isinstance(qs, list | tuple) or len(qs) != n_levels or any(q is None for q in qs):
        return None, 0.0, "NO_QUANTILES"
    cuts = np.asarray(qs, dtype=np.float64)
    null = entry.get("null_rate")
    null_rate = float(null) if isinstance(null, int | float) and 0 <= null <= 1 else 0.0
    if not np.isfinite(cuts).all():
        return None, null_rate, "NO_QUANTILES"
    if not (np.diff(cuts) > 0).all():
        return None, null_rate, "TIED_QUANTILES"
    return cuts, null_rate, ""


class PsiMonitor:
    """A rolling window of the last ``window`` rows, binned on arrival; PSI on demand.

    ``names`` are the columns of the matrices given to :meth:`update` (default:
    the reference's features in the reference's order; pass them explicitly for
    a reference read back from the registry: jsonb does not keep key order).
    :meth:`psi` gives NaN per feature until ``min_rows`` rows have been seen.
    """

    def __init__(
        self,
        reference: Mapping[str, Any],
        window: int = 5000,
        *,
        names: Sequence[str] | None = None,
        min_rows: int = 500,
        eps: float = EPS,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        levels = np.asarray(reference.get("levels") or [], dtype=np.float64)
        feats = reference.get("features")
        feats = feats if isinstance(feats, Mapping) else {}
        if len(levels) == 0 or not (np.diff(levels) > 0).all() or not (
            levels[0] > 0 and levels[-1] < 1
        ):
            raise ValueError(f"reference levels must increase strictly within (0, 1): {levels}")
        self.names = tuple(names) if names is not None else tuple(str(k) for k in feats)
        self.window = window
        self.min_rows = min(min_rows, window)
        self.eps = eps
        shares = np.diff(np.concatenate([[0.0], levels, [1.0]]))
        cols, monitored, cuts, expected = [], [], [], []
        self.skipped: dict[str, str] = {}
        for j, name in enumerate(self.names):
            edges, null_rate, why = _cut_points(feats.get(name), len(levels))
            if edges is None:
                self.skipped[name] = why
                continue
            cols.append(j)
            monitored.append(name)
            cuts.append(edges)
            expected.append(np.concatenate([(1.0 - null_rate) * shares, [null_rate]]))
        self.monitored: tuple[str, ...] = tuple(monitored)
        n_bins = len(levels) + 2  # len(levels) + 1 finite bins, one NaN bin
        self._n_bins = n_bins
        self._cols = np.asarray(cols, dtype=np.intp)
        self._cuts = np.asarray(cuts, dtype=np.float64).reshape(len(cols), len(levels))
        self._expected = np.asarray(expected, dtype=np.float64).reshape(len(cols), n_bins)
        self._bins = np.zeros((window, len(cols)), dtype=np.int8)
        self._pos = 0
        self._count = 0

    @property
    def rows(self) -> int:
        """Rows currently in the window."""
        return self._count

    def reset(self) -> None:
        """Forget every row (e.g. after swapping in a model with another reference)."""
        self._pos = 0
        self._count = 0

    def update(self, matrix: npt.ArrayLike) -> None:
        """Add rows (columns ``names``); the oldest fall out beyond ``window``."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != len(self.names):
            raise ValueError(f"matrix {m.shape} does not have the {len(self.names)} columns")
        m = m[-self.window :]
        k = len(m)
        if k == 0 or len(self._cols) == 0:
            self._count = min(self._count + k, self.window)
            return
        x = m[:, self._cols]
        with np.errstate(invalid="ignore"):
            bins = (x[:, :, None] > self._cuts[None, :, :]).sum(axis=2)
        bins[np.isnan(x)] = self._n_bins - 1
        idx = (self._pos + np.arange(k)) % self.window
        self._bins[idx] = bins.astype(np.int8)
        self._pos = (self._pos + k) % self.window
        self._count = min(self._count + k, self.window)

    def shares(self) -> F64:
        """The window's share of rows per (monitored feature, bin)."""
        n, nf, nb = self._count, len(self._cols), self._n_bins
        if n == 0 or nf == 0:
            return np.zeros((nf, nb))
        flat = self._bins[:n].astype(np.int64) + np.arange(nf, dtype=np.int64) * nb
        counts = np.bincount(flat.ravel(), minlength=nf * nb).reshape(nf, nb)
        out: F64 = counts / n
        return out

    def psi(self) -> dict[str, float]:
        """PSI per monitored feature (NaN each while fewer than ``min_rows`` rows)."""
        if self._count < self.min_rows:
            return dict.fromkeys(self.monitored, float("nan"))
        a = np.maximum(self.shares(), self.eps)
        e = np.maximum(self._expected, self.eps)
        values = ((a - e) * np.log(a / e)).sum(axis=1)
        return {name: float(v) for name, v in zip(self.monitored, values, strict=True)}

    def drifted(self, threshold: float = DRIFT_THRESHOLD) -> dict[str, float]:
        """The features above ``threshold``, worst first."""
        over = {k: v for k, v in self.psi().items() if v > threshold}
        return dict(sorted(over.items(), key=lambda kv: -kv[1]))

    def check(self, threshold: float = DRIFT_THRESHOLD) -> Rejection | None:
        """``FEATURE_DRIFT`` naming the worst feature (and how many drifted), else None."""
        over = self.drifted(threshold)
        if not over:
            return None
        worst, value = next(iter(over.items()))
        return Rejection(
            gate="feature_drift",
            code=ReasonCode.FEATURE_DRIFT,
            values={"feature": worst, "psi": round(value, 6), "limit": threshold,
                    "features_over": len(over), "rows": self._count},
            detail=", ".join(f"{k}={v:.3f}" for k, v in list(over.items())[:10]),
        )
