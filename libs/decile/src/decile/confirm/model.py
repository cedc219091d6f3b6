"""The confirm model: an L2 logistic regression fitted by Newton (IRLS), then calibrated.

Why logistic and not LightGBM: the input is six flow features and the rows
are few (candidates are the top decile of a cycle, and only traded ones have
an outcome), so a low-variance model is the right bias; the relationships it
must learn are monotone (more favourable flow, more wins); a linear model's
ONNX graph reproduces it to float32 rounding, where a GBM's float32
thresholds flip a few rows by up to 1e-2 (DESIGN, "Measured"); its
coefficients are readable in ``metrics.json``; and the fit is pure numpy and
deterministic: the same rows give the same bits, on any machine with IEEE
doubles, with no library version in the loop.

Fit: features standardised on the training block (so one ``l2`` means the
same on every column), Newton steps on the penalised log loss with step
halving, intercept unpenalised, started from zero. The standardisation is
then folded into the coefficients and both are rounded to float32: the ONNX
graph and :meth:`ConfirmModel.raw` use exactly the same parameters.
Calibration (Platt by default, or isotonic) is fitted on the validation block
against ``logit(raw)``, as for the entry model, and applied the same way by
the serving loader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.confirm.dataset import ConfirmDataset, confirm_split
from decile.training import report
from decile.training.calibration import (
    Calibration,
    CalibrationMethod,
    Platt,
    fit_calibration,
    logit,
    sigmoid,
)
from decile.training.split import Split

__all__ = ["ConfirmModel", "FitConfig", "evaluate", "fit_confirm", "fit_logistic"]

F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.int64]
_MIN_STEP: Final = 1e-12


@dataclass(frozen=True, slots=True)
class FitConfig:
    """How the confirm model is fitted.

    Defaults: ``l2`` 1.0 (ridge on the standardised coefficients, intercept
    free; must be > 0 so a constant column cannot make the Hessian singular),
    ``max_iter`` 100 Newton steps, ``tol`` 1e-10 (largest coefficient change
    that counts as converged), ``calibration`` ``"platt"`` fitted on the
    validation block, ``horizon`` 6 candidate bars (the embargo of the default
    chronological split).
    """

    l2: float = 1.0
    max_iter: int = 100
    tol: float = 1e-10
    calibration: CalibrationMethod = "platt"
    horizon: int = 6

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ValueError(f"l2 must be > 0, got {self.l2}")
        if self.max_iter < 1 or not self.tol > 0:
            raise ValueError("max_iter must be >= 1 and tol > 0")


@dataclass(frozen=True, slots=True)
class LogisticFit:
    """Standardised-space solution: ``coef`` per column, ``intercept``, how it ended."""

    coef: F64
    intercept: float
    iterations: int
    converged: bool


def fit_logistic(z: F64, y: F64, l2: float, max_iter: int = 100, tol: float = 1e-10) -> LogisticFit:
    """Minimise ``sum(log(1 + e^s) - y s) + l2/2 |w|^2`` with ``s = z w + b`` by Newton.

    Step halving keeps every step from increasing the loss (a full step can
    overshoot on nearly separable rows); the L2 term keeps the Hessian
    positive definite, so the solve cannot fail.
    """
    n, k = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    pen = np.r_[np.full(k, l2), 0.0]
    w = np.zeros(k + 1)

    def loss(v: F64) -> float:
        s = a @ v
        return float(np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * np.sum(pen * v * v))

    current = loss(w)
    for it in range(1, max_iter + 1):
        p = sigmoid(a @ w)
        g = a.T @ (p - y) + pen * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen)
        step = np.linalg.solve(h, g)
        t = 1.0
        while True:
            trial = w - t * step
            new = loss(trial)
            if new <= current or t < _MIN_STEP:
                break
            t *= 0.5
        w, current = trial, new
        if float(np.abs(t * step).max()) < tol:
            return LogisticFit(w[:k].copy(), float(w[k]), it, True)
    return LogisticFit(w[:k].copy(), float(w[k]), max_iter, False)


@dataclass(frozen=True, eq=False)
class ConfirmModel:
    """A fitted confirm model: ``raw = sigmoid(x @ coef + intercept)``, then ``calibration``.

    ``coef`` and ``intercept`` are float32 values (held as Python floats) in
    the units of the raw features; ``mean``/``scale`` record the training
    standardisation they were folded from.
    """

    feature_names: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    calibration: Calibration
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    fit_config: FitConfig
    iterations: int
    converged: bool

    def margin(self, x: npt.ArrayLike) -> F64:
        """``x @ coef + intercept`` with ``x`` on the float32 grid, as the ONNX graph sees it."""
        a = np.asarray(x, dtype=np.float32).astype(np.float64)
        if a.ndim != 2 or a.shape[1] != len(self.coef):
            raise ValueError(f"confirm model takes (rows, {len(self.coef)}), got {a.shape}")
        out: F64 = a @ np.asarray(self.coef) + self.intercept
        return out

    def raw(self, x: npt.ArrayLike) -> F64:
        """Uncalibrated probability: what ``model.onnx`` outputs."""
        return sigmoid(self.margin(x))

    def predict(self, x: npt.ArrayLike) -> F64:
        """Calibrated ``P(R >= theta)``: what ``decide`` takes."""
        return self.calibration(logit(self.raw(x)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "features": list(self.feature_names),
            "coef": dict(zip(self.feature_names, self.coef, strict=True)),
            "intercept": self.intercept,
            "standardisation": {"mean": list(self.mean), "scale": list(self.scale)},
            "fit": asdict(self.fit_config),
            "iterations": self.iterations,
            "converged": self.converged,
        }


def _both_classes(y: F64, block: str) -> None:
    if len(y) == 0 or y.min() == y.max():
        raise ValueError(
            f"the {block} block needs wins and losses to fit the confirm model "
            f"(rows={len(y)}, wins={int(y.sum())})"
        )


def fit_confirm(
    ds: ConfirmDataset, split: Split | None = None, config: FitConfig | None = None
) -> ConfirmModel:
    """Fit on ``split.train``, calibrate on ``split.validation``; the test block is untouched.

    ``split`` defaults to :func:`~decile.confirm.dataset.confirm_split` with
    ``config.horizon``. ``ValueError`` when a block lacks wins or losses.
    """
    cfg = config or FitConfig()
    sp = split or confirm_split(ds, horizon=cfg.horizon)
    x_tr, y_tr = ds.x[sp.train], ds.y[sp.train].astype(np.float64)
    y_val = ds.y[sp.validation].astype(np.float64)
    _both_classes(y_tr, "train")
    _both_classes(y_val, "validation")
    mean = x_tr.mean(axis=0)
    scale = x_tr.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    fit = fit_logistic((x_tr - mean) / scale, y_tr, cfg.l2, cfg.max_iter, cfg.tol)
    coef = (fit.coef / scale).astype(np.float32)
    intercept = np.float32(fit.intercept - float(np.sum(fit.coef * mean / scale)))
    uncalibrated = ConfirmModel(
        feature_names=ds.feature_names,
        coef=tuple(float(c) for c in coef),
        intercept=float(intercept),
        calibration=Platt(1.0, 0.0),  # the identity on logit(raw): calibrated below
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        fit_config=cfg,
        iterations=fit.iterations,
        converged=fit.converged,
    )
    margin = logit(uncalibrated.raw(ds.x[sp.validation]))
    return replace(uncalibrated, calibration=fit_calibration(cfg.calibration, margin, y_val))


def evaluate(model: ConfirmModel, ds: ConfirmDataset, rows: Idx) -> dict[str, Any]:
    """Calibrated metrics on ``rows``: AUC, PR-AUC, log loss, ECE, and per ATR bucket.

    The per-bucket figures are what the thresholds are tuned from.
    """
    if len(rows) == 0:
        return {"rows": 0}
    y = ds.y[rows].astype(np.float64)
    p = model.predict(ds.x[rows])
    out: dict[str, Any] = {
        "rows": len(rows),
        "base_rate": float(y.mean()),
        "auc": report.auc(y, p),
        "pr_auc": report.pr_auc(y, p),
        "log_loss": report.log_loss(y, p),
        "ece": report.ece(y, p),
        "mean_p": float(p.mean()),
        "mean_realised_r": float(ds.realised_r[rows].mean()),
    }
    buckets = ds.atr_bucket[rows]
    out["by_atr_bucket"] = {
        str(b): {
            "rows": int((buckets == b).sum()),
            "base_rate": float(y[buckets == b].mean()),
            "mean_p": float(p[buckets == b].mean()),
            "auc": report.auc(y[buckets == b], p[buckets == b]),
        }
        for b in np.unique(buckets).tolist()
    }
    return out

