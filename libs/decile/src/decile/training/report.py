"""Evaluation metrics and the selectivity table, reported as they are.

All functions are pure numpy (no sklearn at serving or test time). AUC uses
average ranks for ties; PR-AUC is average precision (the step-wise area
sklearn reports); ECE uses ``bins`` equal-width probability bins weighted by
count. Selectivity is measured on realised R AFTER costs; :func:`decile_table`
and :func:`reliability` feed the report's plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "auc",
    "decile_table",
    "ece",
    "log_loss",
    "pinball",
    "pr_auc",
    "reliability",
    "score_deciles",
    "selectivity",
    "top_decile",
    "top_decile_above_floor",
    "top_decile_per_cycle",
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


def top_decile_above_floor(score: F64, floor: float) -> npt.NDArray[np.bool_]:
    """The top decile of the rows scoring at least ``floor`` (the selected set)."""
    above = score >= floor
    mask = np.zeros(len(score), dtype=np.bool_)
    mask[np.flatnonzero(above)[top_decile(score[above])]] = True
    return mask


def top_decile_per_cycle(score: F64, ts: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per distinct ``ts`` (one bar-close cycle), the top ``ceil(10%)`` rows by score.

    This is how serving selects: it ranks the proposals of one cycle against
    each other, never against other days. A cycle with 1..10 rows keeps its
    best row, so with small cycles far more than 10% of all rows are kept.
    Ties are broken by row order, as in :func:`top_decile`.
    """
    t = np.asarray(ts, dtype=np.int64)
    n = len(score)
    mask = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return mask
    order = np.lexsort((-score, t))  # by ts, then score descending; stable
    ts_sorted = t[order]
    start = np.r_[True, ts_sorted[1:] != ts_sorted[:-1]]
    group_start = np.flatnonzero(start)
    sizes = np.diff(np.r_[group_start, n])
    rank = np.arange(n) - np.repeat(group_start, sizes)
    keep = np.ceil(np.repeat(sizes, sizes) * 0.1)
    mask[order[rank < keep]] = True
    return mask


def score_deciles(score: F64) -> npt.NDArray[np.int64]:
    """Decile 1 (lowest scores) .. 10 (highest) by rank; ties broken by row order."""
    n = len(score)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(score, kind="mergesort")] = np.arange(n)
    out: npt.NDArray[np.int64] = rank * 10 // max(n, 1) + 1
    return out


def decile_table(
    score: npt.ArrayLike, target: npt.ArrayLike, realised_r: npt.ArrayLike | None = None
) -> list[dict[str, Any]]:
    """Per score decile (1 = lowest): n, mean score, mean target and (optionally) mean R."""
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    r = None if realised_r is None else np.asarray(realised_r, dtype=np.float64)
    d = score_deciles(s)
    out = []
    for k in range(1, 11):
        g = d == k
        n = int(g.sum())
        row: dict[str, Any] = {
            "decile": k,
            "n": n,
            "mean_score": float(s[g].mean()) if n else None,
            "mean_target": float(y[g].mean()) if n else None,
        }
        if r is not None:
            row["mean_r"] = float(r[g].mean()) if n else None
        out.append(row)
    return out


def reliability(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> list[dict[str, Any]]:
    """Mean predicted vs observed rate in ``bins`` equal-count bins of ``p``.

    Equal-count rather than equal-width: calibrated scores crowd a narrow
    range, where equal-width bins would leave most of the curve empty.
    """
    yv, pv = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    n = len(pv)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(pv, kind="mergesort")] = np.arange(n)
    b = rank * bins // max(n, 1)
    out = []
    for k in range(bins):
        g = b == k
        if g.any():
            out.append(
                {"n": int(g.sum()), "mean_p": float(pv[g].mean()), "rate": float(yv[g].mean())}
            )
    return out


def selectivity(
    score: npt.ArrayLike,
    win: npt.ArrayLike,
    realised_r: npt.ArrayLike,
    strategy: npt.ArrayLike,
    strategy_ids: Sequence[str],
    floor: float = 0.5,
    *,
    ts: npt.ArrayLike | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Win rate and mean net R: all proposals, the top decile by score, and the
    top decile of those scoring at least ``floor`` — overall and per strategy.

    These deciles are taken over the whole evaluated block. With ``ts`` a
    fourth row, ``top_decile_per_cycle``, ranks within each bar time instead
    (:func:`top_decile_per_cycle`; per strategy: within that strategy's rows
    of the cycle).
    """
    s = np.asarray(score, dtype=np.float64)
    w = np.asarray(win, dtype=np.float64)
    r = np.asarray(realised_r, dtype=np.float64)
    st = np.asarray(strategy)
    t = None if ts is None else np.asarray(ts, dtype=np.int64)
    groups: dict[str, npt.NDArray[np.bool_]] = {"all": np.ones(len(s), dtype=np.bool_)}
    for i, sid in enumerate(strategy_ids):
        groups[sid] = st == i
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, g in groups.items():
        sg, wg, rg = s[g], w[g], r[g]
        top = top_decile(sg)
        top_floor = top_decile_above_floor(sg, floor)
        out[name] = {
            "all": _sel_row(wg, rg),
            "top_decile": _sel_row(wg[top], rg[top]),
            "top_decile_above_floor": _sel_row(wg[top_floor], rg[top_floor]),
        }
        if t is not None:
            cyc = top_decile_per_cycle(sg, t[g])
            out[name]["top_decile_per_cycle"] = _sel_row(wg[cyc], rg[cyc])
    return out
