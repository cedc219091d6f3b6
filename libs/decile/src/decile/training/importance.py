"""Which features the model uses: LightGBM split gain and mean |SHAP| contribution.

Gain says where the trees split during training; SHAP (LightGBM's own
TreeSHAP, ``pred_contrib=True``; no shap package) says how much each feature
moves the predictions on held-out test rows. Both are normalised to sum 1,
keyed by the real feature names (the booster only knows ``f0..fn``), and
ordered by decreasing share, ties by name, so the output is deterministic.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from decile.training.models import FittedModel, as_float32_grid

__all__ = ["SHAP_MAX_ROWS", "feature_importance", "gain_importance", "shap_importance"]

F64 = npt.NDArray[np.float64]
SHAP_MAX_ROWS: Final = 2_000


def _ranked(names: tuple[str, ...], values: F64) -> dict[str, float]:
    total = float(values.sum())
    share = values / total if total > 0 else np.zeros_like(values)
    order = sorted(range(len(names)), key=lambda j: (-share[j], names[j]))
    return {names[j]: float(share[j]) for j in order}


def gain_importance(model: FittedModel) -> dict[str, float]:
    """Share of the total split gain per feature."""
    gain = np.asarray(model.booster.feature_importance("gain"), dtype=np.float64)
    return _ranked(model.feature_names, gain)


def evenly_spaced(n: int, k: int) -> npt.NDArray[np.int64]:
    """At most ``k`` row indices spread evenly over ``0..n-1`` (all of them when ``n <= k``)."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    out: npt.NDArray[np.int64] = np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
    return out


def shap_importance(
    model: FittedModel, x: npt.ArrayLike, max_rows: int = SHAP_MAX_ROWS
) -> dict[str, float]:
    """Share of mean |SHAP contribution| per feature on up to ``max_rows`` evenly spaced rows.

    Contributions are in the booster's raw space (log-odds for entry); empty
    ``x`` gives an empty ranking.
    """
    xv = as_float32_grid(x)
    if len(xv) == 0:
        return {}
    rows = xv[evenly_spaced(len(xv), max_rows)]
    contrib = np.asarray(model.booster.predict(rows, pred_contrib=True), dtype=np.float64)
    mean_abs = np.abs(contrib[:, : len(model.feature_names)]).mean(axis=0)  # last column: bias
    return _ranked(model.feature_names, mean_abs)


def feature_importance(model: FittedModel, x_test: npt.ArrayLike) -> dict[str, dict[str, float]]:
    """``{"gain": {...}, "shap": {...}}`` as written to ``metrics.json["importance"]``."""
    return {"gain": gain_importance(model), "shap": shap_importance(model, x_test)}
