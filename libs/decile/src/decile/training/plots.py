"""The report's PNGs, drawn on the test block with matplotlib's Agg canvas.

Figures are built with the object API on an explicit ``FigureCanvasAgg``
(no pyplot): nothing touches the process-wide backend or pyplot's figure
registry, so this works headless, in threads, and beside a user's own plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from decile.training import report

__all__ = ["calibration_plot", "cumulative_r_plot", "deciles_plot", "quantile_deciles_plot"]

F64 = npt.NDArray[np.float64]
_DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    return path


def _decile_axis(ax: Axes) -> None:
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("score decile (1 = lowest)")


def calibration_plot(path: Path, y: F64, p: F64, title: str = "") -> Path:
    """Reliability curve: mean predicted vs observed win rate, 10 equal-count bins."""
    rows = report.reliability(y, p, bins=10)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    # zoomed to the data (calibrated p_win crowds a narrow band), diagonal across it
    vals = [v for r in rows for v in (r["mean_p"], r["rate"])] or [0.0, 1.0]
    lo, hi = max(0.0, min(vals) - 0.05), min(1.0, max(vals) + 0.05)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot([r["mean_p"] for r in rows], [r["rate"] for r in rows], marker="o", label="test block")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted p_win")
    ax.set_ylabel("observed win rate")
    ax.set_title(title or "Reliability (test block, 10 equal-count bins)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def deciles_plot(path: Path, score: F64, win: F64, realised_r: F64) -> Path:
    """Win rate and mean R after costs by score decile."""
    rows = report.decile_table(score, win, realised_r)
    k = [r["decile"] for r in rows]
    fig = Figure(figsize=(8, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(k, [r["mean_target"] or 0.0 for r in rows], color="tab:blue")
    ax1.axhline(float(np.mean(win)) if len(win) else 0.0, color="grey", linestyle="--", lw=1)
    ax1.set_ylabel("win rate")
    ax1.set_title("Win rate by decile (dashed: all)")
    mean_r = [r["mean_r"] or 0.0 for r in rows]
    ax2.bar(k, mean_r, color=["tab:green" if v > 0 else "tab:red" for v in mean_r])
    ax2.axhline(0.0, color="black", lw=0.8)
    ax2.set_ylabel("mean R after costs")
    ax2.set_title("Mean R by decile")
    for ax in (ax1, ax2):
        _decile_axis(ax)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _cum(ts: npt.NDArray[np.int64], r: F64) -> tuple[npt.NDArray[np.datetime64], F64]:
    order = np.argsort(ts, kind="mergesort")
    return ts[order].astype("datetime64[ms]"), np.cumsum(r[order])


def cumulative_r_plot(
    path: Path,
    ts: npt.NDArray[np.int64],
    realised_r: F64,
    selected: npt.NDArray[np.bool_],
    per_cycle: npt.NDArray[np.bool_] | None = None,
) -> Path:
    """Cumulative realised R over time: selected set (top) vs all proposals (bottom).

    Two panels, not one axis: all proposals sum to many times the selected
    set's R and would flatten it.
    """
    fig = Figure(figsize=(9, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    if selected.any():
        t, c = _cum(ts[selected], realised_r[selected])
        top.step(t, c, where="post", label=f"top decile above floor (n={int(selected.sum())})")
    if per_cycle is not None and per_cycle.any():
        t, c = _cum(ts[per_cycle], realised_r[per_cycle])
        top.step(
            t, c, where="post", linestyle="--", label=f"top per cycle (n={int(per_cycle.sum())})"
        )
    top.axhline(0.0, color="black", lw=0.8)
    top.set_ylabel("cumulative R")
    top.set_title("Selected set (test block, after costs)")
    if selected.any() or (per_cycle is not None and per_cycle.any()):
        top.legend(loc="upper left")
    t, c = _cum(ts, realised_r)
    bottom.step(t, c, where="post", color="grey", label=f"all proposals (n={len(ts)})")
    bottom.axhline(0.0, color="black", lw=0.8)
    bottom.set_ylabel("cumulative R")
    bottom.set_title("All proposals")
    bottom.legend(loc="upper left")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def quantile_deciles_plot(path: Path, q: F64, y: F64, alpha: float) -> Path:
    """Mean predicted vs mean actual target by prediction decile, plus the actual
    ``alpha``-quantile per decile: the line a calibrated quantile head tracks."""
    rows = report.decile_table(q, y)
    k = [r["decile"] for r in rows]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(k, [r["mean_score"] for r in rows], marker="o", label=f"mean predicted q{alpha:g}")
    ax.plot(k, [r["mean_target"] for r in rows], marker="s", label="mean actual")
    d = report.score_deciles(q)
    actual_q = [float(np.quantile(y[d == i], alpha)) if (d == i).any() else np.nan for i in k]
    ax.plot(k, actual_q, marker="^", linestyle=":", label=f"actual q{alpha:g} (should match)")
    _decile_axis(ax)
    ax.set_xlabel("prediction decile (1 = lowest)")
    ax.set_ylabel("target")
    ax.set_title("Prediction vs actual by decile (test block)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)
