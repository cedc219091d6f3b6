"""Helpers for the training tests (a plain module: ``import training_support``)."""

from __future__ import annotations

import numpy as np

from decile.training.dataset import Dataset
from decile.training.labels import LabelConfig

BAR_MS = 300_000


def synthetic_dataset(
    n_rows: int = 30_000, n_features: int = 12, planted: float = 0.0, seed: int = 0
) -> Dataset:
    """Random features on 20 symbols x consecutive bars; ``win`` = noise, or a
    planted logistic function of features 0 and 1 when ``planted`` > 0."""
    rng = np.random.default_rng(seed)
    n_sym = 20
    x = rng.standard_normal((n_rows, n_features))
    logit = planted * (x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 0] * x[:, 2])
    win = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    ts = 1_700_000_000_000 + (np.arange(n_rows) // n_sym).astype(np.int64) * BAR_MS
    code = (np.arange(n_rows) % n_sym).astype(np.int32)
    side = np.where(rng.random(n_rows) < 0.5, 1, -1).astype(np.int8)
    strat = rng.integers(0, 2, n_rows).astype(np.int16)
    r = np.where(win == 1, 1.0, -1.0) - 0.1
    return Dataset(
        x=np.asfortranarray(x),
        feature_names=tuple(f"x{i}" for i in range(n_features)),
        schema_version="synthetic",
        tf="5m",
        symbols=tuple(f"S{i}/USDT" for i in range(n_sym)),
        code=code,
        ts=ts,
        strategy=strat,
        strategy_ids=("a", "b"),
        side=side,
        win=win,
        realised_r=r,
        mae_atr=np.abs(rng.standard_normal(n_rows)) + 0.3 * np.maximum(x[:, 0], 0),
        best_offset=rng.choice([-0.25, -0.15, 0.0, 0.15, 0.25], n_rows),
        label_config=LabelConfig(),
        counts={"rows": n_rows},
    )
