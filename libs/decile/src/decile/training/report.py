"""Evaluation metrics and the selectivity table, reported as they are.

All functions are pure numpy (no sklearn at serving or test time). AUC uses
average ranks for ties; PR-AUC is average precision (the step-wise area
sklearn reports); ECE uses ``bins`` equal-width probability bins weighted by
count. Selectivity is measured on realised R AFTER costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "auc",
    "ece",
    "log_loss",
    "pinball",
    "pr_auc",
    "selectivity",
    "top_decile",
]

F64 = npt.NDArray[np.float64]


def _ranks(x: F64) -> F64:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0
    out = np.empty(len(x))
    out[order] = avg[grp]
    return out


def auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """ROC AUC (Mann-Whitney); NaN when one class is absent. NaN scores are dropped."""
    yv, s = np.asarray(y, dtype=np.float64), np.asarray(score, dtype=np.float64)
    ok = np.isfinite(s)
    yv, s = yv[ok], s[ok]
    pos = yv > 0.5
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = _ranks(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def pr_auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Average precision: sum over positives of precision at their threshold."""
    yv, s = np.asarray(y, dtype=np.float64) > 0.5, np.asarray(score, dtype=np.float64)
    if not yv.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    ys, ss = yv[order], s[order]
    tp = np.cumsum(ys)
    last = np.r_[ss[1:] != ss[:-1], True]  # evaluate at each distinct threshold
    tp_t, k_t = tp[last], (np.flatnonzero(last) + 1)
    precision = tp_t / k_t
    recall = tp_t / tp[-1]
    d_recall = np.diff(np.r_[0.0, recall])
    return float((d_recall * precision).sum())


def log_loss(y: npt.ArrayLike, p: npt.ArrayLike, eps: float = 1e-15) -> float:
    yv = np.asarray(y, dtype=np.float64)
    pv = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(yv * np.log(pv) + (1 - yv) * np.log(1 - pv)))


def ece(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> float:
    """Expected calibration error: count-weighted |mean p - win rate| per bin."""
    yv, pv = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(yv) == 0:
        return float("nan")
    b = np.minimum((pv * bins).astype(np.int64), bins - 1)
    sp = np.bincount(b, pv, minlength=bins)
    sy = np.bincount(b, yv, minlength=bins)
    return float(np.abs(sp - sy).sum() / len(yv))


def pinball(y: npt.ArrayLike, q: npt.ArrayLike, alpha: float) -> float:
    """Mean quantile (pinball) loss of prediction ``q`` at level ``alpha``."""
    d = np.asarray(y, dtype=np.float64) - np.asarray(q, dtype=np.float64)
    return float(np.mean(np.maximum(alpha * d, (alpha - 1) * d)))


def _sel_row(win: F64, r: F64) -> dict[str, Any]:
    n = len(win)
    return {
        "n": n,
        "win_rate": float(win.mean()) if n else None,
        "mean_r": float(r.mean()) if n else None,
    }


def top_decile(score: F64) -> npt.NDArray[np.bool_]:
    """Rows in the top 10% by score (at least one when any rows); ties broken by order."""
    n = len(score)
    k = max(1, int(np.ceil(n * 0.1))) if n else 0
    mask = np.zeros(n, dtype=np.bool_)
    mask[np.argsort(-score, kind="mergesort")[:k]] = True
    return mask


def selectivity(
    score: npt.ArrayLike,
    win: npt.ArrayLike,
    realised_r: npt.ArrayLike,
    strategy: npt.ArrayLike,
    strategy_ids: Sequence[str],
    floor: float = 0.5,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Win rate and mean net R: all proposals, the top decile by score, and the
    top decile of those scoring at least ``floor`` — overall and per strategy.

    The decile is taken over the whole evaluated block (not per bar).
    """
    s = np.asarray(score, dtype=np.float64)
    w = np.asarray(win, dtype=np.float64)
    r = np.asarray(realised_r, dtype=np.float64)
    st = np.asarray(strategy)
    groups: dict[str, npt.NDArray[np.bool_]] = {"all": np.ones(len(s), dtype=np.bool_)}
    for i, sid in enumerate(strategy_ids):
        groups[sid] = st == i
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, g in groups.items():
        sg, wg, rg = s[g], w[g], r[g]
        top = top_decile(sg)
        above = sg >= floor
        top_floor = np.zeros(len(sg), dtype=np.bool_)
        top_floor[np.flatnonzero(above)[top_decile(sg[above])]] = True
        out[name] = {
            "all": _sel_row(wg, rg),
            "top_decile": _sel_row(wg[top], rg[top]),
            "top_decile_above_floor": _sel_row(wg[top_floor], rg[top_floor]),
        }
    return out
