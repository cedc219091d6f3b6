"""The whole offline path learns a real pattern: bars -> features -> proposals -> labels -> model.

A synthetic market where the next bars drift in the direction of the last
three bars' return (momentum planted, strong against the noise) is run
through the real feature engine, the real strategies and the real labeller;
the entry model must rank the resulting proposals with test AUC >= 0.8. If
the feature engine, the labels or the join between them were broken (shifted
a bar, constant columns, rows mismatched), the pattern would not survive.
The same market without the pattern stays near chance: the 0.8 comes from
the plant, not from a leak.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lightgbm")

from decile.market.bars import Bars
from decile.training import build_dataset, chronological_split
from decile.training.models import TrainConfig, fit_family
from decile.training.report import auc

BAR_MS = 300_000
START_MS = 1_704_067_200_000
# BTC and ETH are there because cross-asset features reference them by name
SYMBOLS = ("BTC/USDT", "ETH/USDT", *(f"S{i}/USDT" for i in range(10)))
CONFIG = TrainConfig(num_boost_round=150, early_stopping_rounds=20, min_data_in_leaf=30)


def planted_market(n_bars: int = 4_000, momentum: float = 0.6, seed: int = 3) -> Bars:
    """Bars whose next return leans ``momentum`` sigmas toward the last 3 bars' direction."""
    rng = np.random.default_rng(seed)
    sigma = 0.004
    parts = []
    for sym in SYMBOLS:
        eps = rng.standard_normal(n_bars)
        r = np.zeros(n_bars)
        for t in range(n_bars):
            trend = np.sign(r[max(0, t - 3) : t].sum()) if t else 0.0
            r[t] = sigma * (momentum * trend + eps[t])
        close = 100.0 * np.exp(np.cumsum(r))
        open_ = np.r_[100.0, close[:-1]]
        wick = sigma * 0.5 * np.abs(rng.standard_normal((2, n_bars)))
        high = np.maximum(open_, close) * np.exp(wick[0])
        low = np.minimum(open_, close) * np.exp(-wick[1])
        volume = np.exp(rng.normal(8.0, 0.5, n_bars))
        ts = START_MS + np.arange(n_bars, dtype=np.int64) * BAR_MS
        parts.append(Bars.from_arrays(sym, ts, open_, high, low, close, volume))
    return Bars.concat(parts)


def held_out_auc(momentum: float) -> float:
    ds = build_dataset(planted_market(momentum=momentum))
    sp = chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=BAR_MS)
    model = fit_family(ds, sp, "entry", CONFIG)
    return auc(ds.win[sp.test], model.predict(ds.x[sp.test]))


def test_a_planted_momentum_pattern_is_learned_through_the_real_pipeline() -> None:
    assert held_out_auc(momentum=0.6) >= 0.8


def test_the_same_market_without_the_pattern_is_not_learned() -> None:
    assert 0.4 <= held_out_auc(momentum=0.0) <= 0.6
