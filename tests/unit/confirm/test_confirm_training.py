"""Confirm training: rows from the serving code path, labels, chronological split, the fit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from confirm_support import CLOSE, Planted, bar, bars_of, candidate, minute

import decile.confirm.window as window_module
from decile.confirm import (
    FLOW_FEATURES,
    ConfirmConfig,
    FitConfig,
    Window,
    atr_edges,
    build_confirm_dataset,
    confirm_split,
    fit_confirm,
    flow_bars,
)
from decile.confirm.flow import flow_features
from decile.confirm.model import fit_logistic
from decile.market.bars import Bars
from decile.market.timeframes import to_ms
from decile.training import report

CONFIG = ConfirmConfig(baseline_bars=4)


def small_market() -> tuple[list[Any], dict[str, float], Bars]:
    """Three candidates, 1h apart: one complete, one without outcome, one with a missing bar."""
    cands, rows = [], []
    for i in range(3):
        c = candidate(bar_time=candidate().bar_time + timedelta(hours=i))
        cands.append(c)
        base = 60 * i
        rows += [bar(minute(base + k), 100.0 + 0.1 * k, 10.0 + k) for k in range(-4, 3)]
    rows = [r for r in rows if r.ts != minute(120 + 1)]  # the third window misses its 2nd bar
    outcomes = {cands[0].id: 0.0, cands[2].id: 1.0}  # the second was never traded
    return cands, outcomes, bars_of("BTC/USDT", rows)


def test_the_dataset_builder_computes_features_with_the_one_flow_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert window_module.__dict__["flow_features"] is flow_features
    calls: list[str] = []

    def spy(c: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(c.id)
        return flow_features(c, *args, **kwargs)

    monkeypatch.setattr(window_module, "flow_features", spy)
    cands, outcomes, bars = small_market()
    ds = build_confirm_dataset(cands, outcomes, bars, CONFIG)
    assert calls == list(ds.candidate_ids) == [cands[0].id]


def test_training_rows_equal_what_the_service_computes_bar_by_bar(planted: Planted) -> None:
    cfg, by_id = planted.config, {c.id: c for c in planted.candidates}
    for row in (0, 7, len(planted.ds) - 1):
        c = by_id[planted.ds.candidate_ids[row]]
        mine = planted.bars.select((c.symbol,))
        close = to_ms(c.bar_time) + 300_000
        before = mine.between(close - cfg.baseline_bars * 60_000, close)
        w = Window.open(c, cfg, opened_at=c.bar_time + timedelta(minutes=5), history=before)
        for b in flow_bars(mine.between(close, close + cfg.window_ms)):  # as the bus delivers
            w = w.add_bar(b)
        assert w.complete
        assert np.array_equal(w.features(cfg), planted.ds.x[row])


def test_counts_say_what_was_dropped_and_why() -> None:
    cands, outcomes, bars = small_market()
    ds = build_confirm_dataset([*cands, cands[0]], outcomes, bars, CONFIG)
    assert ds.counts == {
        "candidates": 4, "duplicates": 1, "no_outcome": 1, "incomplete_window": 1, "rows": 1,
    }
    assert ds.x.shape == (1, len(FLOW_FEATURES))
    assert ds.ts.tolist() == [to_ms(CLOSE) + CONFIG.window_ms]
    assert ds.flow_params == CONFIG.flow_params()


def test_the_label_is_realised_r_at_least_theta() -> None:
    cands, _, _ = small_market()
    rows: list[Any] = []
    for i in range(3):
        rows += [bar(minute(60 * i + k), 100.0, 10.0) for k in range(-4, 3)]
    bars = bars_of("BTC/USDT", rows)
    outcomes = {cands[0].id: 0.0, cands[1].id: 0.4, cands[2].id: -0.2}
    assert build_confirm_dataset(cands, outcomes, bars, CONFIG).y.tolist() == [1, 1, 0]
    strict = build_confirm_dataset(cands, outcomes, bars, CONFIG, theta=0.5)
    assert strict.y.tolist() == [0, 0, 0]
    assert strict.realised_r.tolist() == [0.0, 0.4, -0.2]


def test_candidates_of_several_timeframes_are_refused() -> None:
    cands, outcomes, bars = small_market()
    other = candidate(tf="15m")
    with pytest.raises(ValueError, match="one timeframe"):
        build_confirm_dataset([*cands, other], {**outcomes, other.id: 1.0}, bars, CONFIG)


def test_atr_edges_are_terciles_of_the_candidates() -> None:
    cands = [candidate(atr=a) for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    lo, hi = atr_edges(cands)
    assert lo == pytest.approx(np.quantile([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 1 / 3), abs=1e-6)
    assert hi == pytest.approx(np.quantile([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2 / 3), abs=1e-6)
    ConfirmConfig(atr_edges=(lo, hi))  # usable as they come


def test_the_split_is_chronological_and_embargoed(planted: Planted) -> None:
    ds, sp = planted.ds, planted.split
    assert np.all(np.diff(ds.ts) >= 0)
    embargo = 6 * ds.bar_ms
    assert ds.ts[sp.train].max() + embargo < ds.ts[sp.validation].min()
    assert ds.ts[sp.validation].max() + embargo < ds.ts[sp.test].min()
    assert sp.embargo_ms == embargo


def test_a_planted_price_versus_entry_edge_is_learned_out_of_sample(planted: Planted) -> None:
    ds, sp, model = planted.ds, planted.split, planted.model
    test_auc = report.auc(ds.y[sp.test], model.predict(ds.x[sp.test]))
    assert test_auc >= 0.8
    coef = dict(zip(FLOW_FEATURES, model.coef, strict=True))
    assert coef["px_vs_entry_atr"] > 0
    assert model.converged


def test_the_fit_is_deterministic(planted: Planted) -> None:
    again = fit_confirm(planted.ds, planted.split)
    assert again.coef == planted.model.coef
    assert again.intercept == planted.model.intercept
    assert again.calibration == planted.model.calibration


def test_coefficients_are_float32_so_onnx_holds_the_same_model(planted: Planted) -> None:
    m = planted.model
    assert all(float(np.float32(c)) == c for c in (*m.coef, m.intercept))


def test_the_newton_solution_is_the_penalised_optimum() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(400, 3))
    y = (z @ np.array([1.5, -1.0, 0.0]) + rng.normal(size=400) > 0).astype(np.float64)
    fit = fit_logistic(z, y, l2=2.0)
    p = 1 / (1 + np.exp(-(z @ fit.coef + fit.intercept)))
    grad = np.r_[z.T @ (p - y) + 2.0 * fit.coef, np.sum(p - y)]
    assert fit.converged
    assert np.abs(grad).max() < 1e-8


def test_a_validation_block_without_both_outcomes_is_refused(planted: Planted) -> None:
    ds, sp = planted.ds, planted.split
    only_wins = type(ds)(**{**ds.__dict__, "y": np.ones_like(ds.y)})
    with pytest.raises(ValueError, match="wins and losses"):
        fit_confirm(only_wins, sp)


def test_isotonic_calibration_is_available(planted: Planted) -> None:
    m = fit_confirm(planted.ds, planted.split, FitConfig(calibration="isotonic"))
    p = m.predict(planted.ds.x[planted.split.test])
    assert np.all((p > 0) & (p < 1))


def test_default_split_uses_the_fit_horizon(planted: Planted) -> None:
    m = fit_confirm(planted.ds)
    assert m.coef == planted.model.coef  # confirm_split(ds) with horizon 6 is the default
    assert confirm_split(planted.ds, horizon=6).test.tolist() == planted.split.test.tolist()


def test_without_a_planted_edge_the_model_finds_none(planted: Planted) -> None:
    rng = np.random.default_rng(11)
    coin = {c.id: float(rng.choice([-1.0, 1.0])) for c in planted.candidates}
    ds = build_confirm_dataset(planted.candidates, coin, planted.bars, planted.config)
    sp = confirm_split(ds)
    auc = report.auc(ds.y[sp.test], fit_confirm(ds, sp).predict(ds.x[sp.test]))
    assert 0.35 < auc < 0.65
