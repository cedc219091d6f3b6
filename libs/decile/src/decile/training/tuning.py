"""Hyperparameter search with Optuna, scored on the validation block only.

The objective is the validation log loss of the calibrated ``p_win`` (entry)
or the validation pinball loss (quantile families). The test block is cut
out of the split before any trial runs, so no choice made here can have seen
it: the test metrics ``train_family`` reports after tuning stay honest.

Deterministic for a fixed ``base.seed`` (TPE sampler seeded, LightGBM
deterministic, one trial at a time) unless ``timeout_s`` cuts the run short,
which makes the number of trials depend on the machine's speed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

import numpy as np
import optuna

from decile.training import report
from decile.training.dataset import Dataset
from decile.training.models import FAMILIES, Family, TrainConfig, fit_family
from decile.training.split import Split

__all__ = ["SEARCH_SPACE", "tune"]

# name -> (low, high, log scale); integers for the first two.
SEARCH_SPACE: Final[dict[str, tuple[float, float, bool]]] = {
    "num_leaves": (7, 63, True),
    "min_data_in_leaf": (20, 400, True),
    "learning_rate": (0.01, 0.2, True),
    "feature_fraction": (0.5, 1.0, False),
    "lambda_l2": (1e-3, 10.0, True),
}
_INTS: Final = frozenset({"num_leaves", "min_data_in_leaf"})


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (lo, hi, log) in SEARCH_SPACE.items():
        if name in _INTS:
            out[name] = trial.suggest_int(name, int(lo), int(hi), log=log)
        else:
            out[name] = trial.suggest_float(name, lo, hi, log=log)
    return out


def validation_loss(ds: Dataset, split: Split, fam: Family, cfg: TrainConfig) -> float:
    """The tuning objective: fit on train, score on validation (lower is better)."""
    model = fit_family(ds, split, fam, cfg)
    x_va = ds.x[split.validation]
    y_va = ds.target(fam.target)[split.validation]
    pred = model.predict(x_va)
    if fam.objective == "binary":
        return report.log_loss(y_va, pred)
    return report.pinball(y_va, pred, float(fam.alpha or 0.5))


def tune(
    ds: Dataset,
    split: Split,
    family: str | Family = "entry",
    *,
    trials: int,
    timeout_s: float | None = None,
    base: TrainConfig | None = None,
) -> tuple[TrainConfig, dict[str, Any]]:
    """Search :data:`SEARCH_SPACE` around ``base``; returns the best config and a summary.

    The summary (trials run, best value, best params, objective, seed) is
    meant for ``train_family(..., tuning=summary)``. Exceptions from fitting
    (leakage, feature health) propagate from the first trial.
    """
    if trials < 1:
        raise ValueError("trials must be >= 1")
    fam = FAMILIES[family] if isinstance(family, str) else family
    cfg0 = base or TrainConfig()
    blind = replace(split, test=np.empty(0, dtype=np.int64))  # the test block is never seen

    def objective(trial: optuna.Trial) -> float:
        return validation_loss(ds, blind, fam, replace(cfg0, **_suggest(trial)))

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg0.seed)
        )
        study.optimize(objective, n_trials=trials, timeout=timeout_s, n_jobs=1)
    finally:
        optuna.logging.set_verbosity(previous)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = dict(study.best_params)
    summary: dict[str, Any] = {
        "objective": (
            "validation log_loss of calibrated p_win"
            if fam.objective == "binary"
            else f"validation pinball (alpha {fam.alpha})"
        ),
        "direction": "minimize",
        "trials": len(done),
        "best_trial": study.best_trial.number,
        "best_value": float(study.best_value),
        "best_params": best,
        "search_space": {k: list(v) for k, v in SEARCH_SPACE.items()},
        "sampler": "TPESampler",
        "seed": cfg0.seed,
        "timeout_s": timeout_s,
    }
    return replace(cfg0, **best), summary
