"""LightGBM model families: the calibrated entry classifier and the quantile heads.

| family | target | objective |
|---|---|---|
| entry | ``win`` (+1R before -1R) | binary, class-balanced, Platt/isotonic on validation |
| risk | ``mae_atr`` | quantile alpha 0.7 |
| rr | ``realised_r`` (net of costs) | quantile alpha 0.6 |
| offset | ``best_offset`` (ATR) | quantile alpha 0.5 |

Training is reproducible by construction: fixed seeds for every random
stream, ``deterministic=True``, ``force_row_wise=True`` and a fixed thread
count, so the same rows give the same trees to the bit. Early stopping
watches the validation block only; the test block is never seen here.

Before fitting, the feature health check and :func:`leakage_check` run on
the train block; the latter refuses any single feature whose own
AUC against the (binarised) target on the TRAIN rows exceeds the limit
(0.9): no honest 5-minute feature is that good, a leaked future one is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from decile.events.base import Rejection
from decile.features.health import check_health
from decile.training.calibration import (
    Calibration,
    CalibrationMethod,
    Platt,
    fit_calibration,
    logit,
)
from decile.training.dataset import Dataset
from decile.training.report import auc
from decile.training.split import Split

__all__ = [
    "FAMILIES",
    "Family",
    "FeatureHealthError",
    "FittedModel",
    "LeakageError",
    "Platt",
    "TrainConfig",
    "fit_family",
    "leakage_check",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    target: str
    objective: str
    alpha: float | None = None


FAMILIES: Final[dict[str, Family]] = {
    "entry": Family("entry", "win", "binary"),
    "risk": Family("risk", "mae_atr", "quantile", 0.7),
    "rr": Family("rr", "realised_r", "quantile", 0.6),
    "offset": Family("offset", "best_offset", "quantile", 0.5),
}


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """LightGBM settings. Defaults: at most 200 trees at learning rate 0.05,
    15 leaves, >= 50 rows per leaf, 80% feature/row bagging every iteration,
    L2 1.0, early stopping after 20 rounds without validation gain, seed 7,
    1 thread; leakage limit: single-feature train AUC 0.9; entry calibration
    Platt (``"isotonic"``: pool-adjacent-violators, see :mod:`.calibration`)."""

    num_boost_round: int = 200
    early_stopping_rounds: int = 20
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    seed: int = 7
    num_threads: int = 1
    leakage_auc: float = 0.9
    calibration: CalibrationMethod = "platt"  # Literal["platt", "isotonic"]

    def __post_init__(self) -> None:
        if self.calibration not in ("platt", "isotonic"):
            raise ValueError(f"calibration must be 'platt' or 'isotonic', not {self.calibration!r}")

    def params(self, family: Family) -> dict[str, Any]:
        p: dict[str, Any] = {
            "objective": family.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "bagging_seed": self.seed,
            "feature_fraction_seed": self.seed,
            "data_random_seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }
        if family.alpha is not None:
            p["alpha"] = family.alpha
            p["metric"] = "quantile"
        else:
            p["metric"] = "binary_logloss"
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeatureHealthError(ValueError):
    """Training refused: the train block fails the feature health check."""

    def __init__(self, family: str, rejections: list[Rejection]) -> None:
        self.rejections = rejections
        listed = "; ".join(f"{r.code}: {r.values}" for r in rejections)
        super().__init__(f"FEATURE_HEALTH: refusing to train {family!r}: {listed}")


class LeakageError(ValueError):
    """Training refused: features that predict the label on their own (name, AUC)."""

    def __init__(self, family: str, offenders: list[tuple[str, float]], limit: float) -> None:
        self.offenders = offenders
        listed = ", ".join(f"{n} (AUC {a:.3f})" for n, a in offenders)
        super().__init__(
            f"LEAKAGE_SUSPECTED: refusing to train {family!r}: single-feature train AUC above "
            f"{limit} for {listed}; a feature that good alone is almost surely built from the "
            f"future. Remove it or fix its definition."
        )


def leakage_check(x: F64, y: F64, names: tuple[str, ...], limit: float) -> list[tuple[str, float]]:
    """Features whose AUC (or 1 - AUC) against binary ``y`` exceeds ``limit``."""
    out = []
    for j, name in enumerate(names):
        col = x[:, j]
        ok = np.isfinite(col)
        a = auc(y[ok], col[ok])
        if np.isfinite(a) and max(a, 1.0 - a) > limit:
            out.append((name, round(max(a, 1.0 - a), 6)))
    return out


@dataclass(frozen=True, eq=False)
class FittedModel:
    """A trained family: the booster (exactly ``best_iteration`` trees, thresholds on
    the float32 grid), its params, and (entry only) the calibration."""

    family: Family
    booster: lgb.Booster
    params: dict[str, Any]
    best_iteration: int
    feature_names: tuple[str, ...]
    calibration: Calibration | None

    def raw(self, x: npt.ArrayLike) -> F64:
        """Booster output: win probability (uncalibrated) for entry, the quantile otherwise.

        Inputs are rounded to float32 first: that is what ``model.onnx`` sees.
        """
        xv = as_float32_grid(x)
        out = self.booster.predict(xv)
        return np.asarray(out, dtype=np.float64)

    def predict(self, x: npt.ArrayLike) -> F64:
        """Calibrated ``p_win`` for entry; the quantile for the other families."""
        raw = self.raw(x)
        if self.calibration is None:
            return raw
        return self.calibration(logit(raw))


def as_float32_grid(x: npt.ArrayLike) -> F64:
    """``x`` rounded to float32 and back: training, LightGBM and ONNX all see these values."""
    out: F64 = np.asarray(x, dtype=np.float32).astype(np.float64)
    return out


def _floor32(t: float) -> float:
    """The largest float32 <= ``t``."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def snap_thresholds(booster: lgb.Booster, num_iteration: int = -1) -> lgb.Booster:
    """The same trees with every split threshold moved down to the float32 grid.

    ONNX tree ensembles compare float32 inputs to float32 thresholds; LightGBM
    compares to doubles. For inputs on the float32 grid ``x <= t`` equals
    ``x <= floor32(t)``, so after snapping both engines take the same branch
    on every row (the design's 1e-2 outliers came from thresholds rounding up
    past a data value).
    """
    # tree_sizes holds byte offsets the edit invalidates; without it LightGBM parses serially.
    lines = [
        line
        for line in booster.model_to_string(num_iteration=num_iteration).split("\n")
        if not line.startswith("tree_sizes=")
    ]
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            vals = line[len("threshold=") :].split(" ")
            lines[i] = "threshold=" + " ".join(repr(_floor32(float(v))) for v in vals if v)
    return lgb.Booster(model_str="\n".join(lines))


_logit = logit  # the pre-calibration-module name


def binary_target(ds: Dataset, family: Family, rows: npt.NDArray[np.int64]) -> F64:
    """The label the leakage guard scores features against."""
    if family.objective == "binary":
        return ds.target(family.target)[rows]
    t = ds.target(family.target)[rows]
    return (t > np.median(t)).astype(np.float64)


def fit_family(
    ds: Dataset, split: Split, family: str | Family = "entry", config: TrainConfig | None = None
) -> FittedModel:
    """Train one family on ``split.train``, early-stopped on ``split.validation``.

    Raises :class:`FeatureHealthError` when the train block fails
    :func:`decile.features.check_health` (all-null, constant, or > 5% missing
    columns), :class:`LeakageError` (nothing trained) when the guard fires, and
    ``ValueError`` when a block is empty or the entry train labels are one class.
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    cfg = config or TrainConfig()
    if len(split.train) == 0 or len(split.validation) == 0:
        raise ValueError("train and validation blocks must be non-empty")
    x_tr, x_va = as_float32_grid(ds.x[split.train]), as_float32_grid(ds.x[split.validation])
    y_all = ds.target(fam.target)
    y_tr, y_va = y_all[split.train], y_all[split.validation]
    health = check_health(x_tr, ds.feature_names)
    if health:
        raise FeatureHealthError(fam.name, health)
    offenders = leakage_check(
        x_tr, binary_target(ds, fam, split.train), ds.feature_names, cfg.leakage_auc
    )
    if offenders:
        raise LeakageError(fam.name, offenders, cfg.leakage_auc)
    weight = None
    if fam.objective == "binary":
        n_pos = float(y_tr.sum())
        n_neg = float(len(y_tr) - n_pos)
        if n_pos == 0 or n_neg == 0:
            raise ValueError("entry training labels are a single class")
        weight = np.where(y_tr > 0.5, len(y_tr) / (2 * n_pos), len(y_tr) / (2 * n_neg))
    params = cfg.params(fam)
    names = [f"f{i}" for i in range(ds.x.shape[1])]  # ONNX-safe; real names in metrics.json
    train_set = lgb.Dataset(x_tr, y_tr, weight=weight, feature_name=names, free_raw_data=False)
    valid_set = lgb.Dataset(x_va, y_va, reference=train_set, feature_name=names)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )
    best = int(booster.best_iteration) or booster.current_iteration()
    booster = snap_thresholds(booster, best)  # keeps exactly the best iterations
    calibration = None
    model = FittedModel(fam, booster, params, best, ds.feature_names, None)
    if fam.objective == "binary":
        calibration = fit_calibration(cfg.calibration, logit(model.raw(x_va)), y_va)
        model = FittedModel(fam, booster, params, best, ds.feature_names, calibration)
    return model
