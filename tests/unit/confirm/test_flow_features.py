"""Each flow feature on a hand-made window, its neutral values, and the schema version pin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from confirm_support import bar, bars_of, candidate, minute

from decile.confirm import (
    FLOW_FEATURES,
    FLOW_SCHEMA_VERSION,
    FLOW_SPECS,
    ConfirmConfig,
    Window,
    flow_features,
    flow_mismatch,
)
from decile.confirm.flow import Z_CLIP, derive_flow_version
from decile.market.bars import Bars
from decile.reasons import ReasonCode

EDGES = (0.25, 0.6)
# window: closes 100.5, 99.8, 101.0 against entry 100 (ATR 1.0), volumes 20, 10, 30
WINDOW = [bar(minute(0), 100.5, 20.0), bar(minute(1), 99.8, 10.0), bar(minute(2), 101.0, 30.0)]
# baseline: closes 99, 100, 99, 100 (log returns a, -a, a), volumes 10, 10, 10, 14 (mean 11, sd 2)
BASELINE = [
    bar(minute(-4), 99.0, 10.0),
    bar(minute(-3), 100.0, 10.0),
    bar(minute(-2), 99.0, 10.0),
    bar(minute(-1), 100.0, 14.0),
]
A = math.log(100 / 99)
RET_SD = 2 * A / math.sqrt(3)  # sample std of (a, -a, a)


def features(side: str = "long", htf: float | None = 0.5, **overrides: object) -> dict[str, float]:
    c = candidate(side=side, **overrides)
    x = flow_features(
        c, bars_of(c.symbol, WINDOW), htf, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    return dict(zip(FLOW_FEATURES, x.tolist(), strict=True))


def test_names_are_unique_and_each_has_a_spec() -> None:
    assert len(set(FLOW_FEATURES)) == len(FLOW_FEATURES) == len(FLOW_SPECS)


def test_schema_version_is_derived_from_the_names() -> None:
    assert derive_flow_version() == FLOW_SCHEMA_VERSION
    assert derive_flow_version(tuple(reversed(FLOW_FEATURES))) != FLOW_SCHEMA_VERSION


def test_price_versus_entry_is_the_last_close_in_atr_signed_by_side() -> None:
    assert features("long")["px_vs_entry_atr"] == pytest.approx(1.0)
    assert features("short")["px_vs_entry_atr"] == pytest.approx(-1.0)
    assert features("long", atr=2.0)["px_vs_entry_atr"] == pytest.approx(0.5)


def test_fraction_favourable_counts_closes_on_the_candidates_side() -> None:
    assert features("long")["frac_favourable"] == pytest.approx(2 / 3)
    assert features("short")["frac_favourable"] == pytest.approx(1 / 3)


def test_a_close_exactly_at_entry_is_not_favourable() -> None:
    c = candidate()
    at_entry = [bar(minute(0), 100.0)]
    x = flow_features(c, bars_of(c.symbol, at_entry), None, baseline=Bars.empty(), atr_edges=EDGES)
    assert x[FLOW_FEATURES.index("frac_favourable")] == 0.0


def test_volume_spike_is_the_window_mean_against_the_baseline_in_its_std() -> None:
    assert features("long")["vol_spike_z"] == pytest.approx((20.0 - 11.0) / 2.0)
    assert features("short")["vol_spike_z"] == pytest.approx(4.5)  # volume has no side


def test_return_z_is_the_window_move_over_baseline_volatility_scaled_by_root_n() -> None:
    expected = math.log(101.0 / 100.0) / (RET_SD * math.sqrt(3))
    assert features("long")["ret_z"] == pytest.approx(expected)
    assert features("short")["ret_z"] == pytest.approx(-expected)


@pytest.mark.parametrize(("atr", "bucket"), [(0.2, 0), (0.25, 1), (0.59, 1), (0.6, 2), (3.0, 2)])
def test_atr_bucket_follows_the_edges_in_percent_of_entry(atr: float, bucket: int) -> None:
    assert features(atr=atr)["atr_bucket"] == bucket


def test_htf_bias_is_the_trend_in_atr_signed_by_side() -> None:
    assert features("long", htf=0.5)["htf_bias_atr"] == pytest.approx(0.5)  # 0.5% / ATR 1%
    assert features("short", htf=0.5)["htf_bias_atr"] == pytest.approx(-0.5)
    assert features("long", htf=0.5, atr=0.5)["htf_bias_atr"] == pytest.approx(1.0)


def test_missing_htf_input_is_neutral() -> None:
    assert features(htf=None)["htf_bias_atr"] == 0.0
    assert features(htf=float("nan"))["htf_bias_atr"] == 0.0


def test_an_empty_window_gives_the_neutral_values() -> None:
    c = candidate()
    x = flow_features(
        c, Bars.empty(), None, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    neutral = {s.name: s.neutral for s in FLOW_SPECS} | {"atr_bucket": 2.0}
    assert dict(zip(FLOW_FEATURES, x.tolist(), strict=True)) == neutral


def test_a_short_baseline_leaves_the_z_scores_at_zero() -> None:
    c = candidate()
    x = flow_features(
        c, bars_of(c.symbol, WINDOW), None, baseline=bars_of(c.symbol, BASELINE[:2]),
        atr_edges=EDGES,
    )
    got = dict(zip(FLOW_FEATURES, x.tolist(), strict=True))
    assert got["vol_spike_z"] == 0.0
    assert got["ret_z"] == 0.0
    assert got["px_vs_entry_atr"] == pytest.approx(1.0)


def test_unbounded_features_are_clipped() -> None:
    c = candidate()
    far = [bar(minute(0), 150.0, 1e9)]
    x = flow_features(
        c, bars_of(c.symbol, far), 1e6, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    got = dict(zip(FLOW_FEATURES, x.tolist(), strict=True))
    for name in ("px_vs_entry_atr", "vol_spike_z", "ret_z", "htf_bias_atr"):
        assert got[name] == Z_CLIP


def test_a_non_finite_bar_never_gives_a_non_finite_feature() -> None:
    c = candidate()
    bad = [bar(minute(0), float("nan"), float("inf"))]
    x = flow_features(
        c, bars_of(c.symbol, bad), None, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    assert np.isfinite(x).all()


def test_window_order_does_not_matter() -> None:
    c = candidate()
    shuffled = [WINDOW[2], WINDOW[0], WINDOW[1]]
    a = flow_features(
        c, bars_of(c.symbol, WINDOW), 0.5, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    b = flow_features(
        c, bars_of(c.symbol, shuffled), 0.5, baseline=bars_of(c.symbol, BASELINE), atr_edges=EDGES
    )
    assert np.array_equal(a, b)


def test_the_window_computes_the_same_row_from_the_bars_it_was_fed() -> None:
    config = ConfirmConfig(baseline_bars=4)
    c = candidate()
    w = Window.open(c, config, opened_at=c.bar_time, history=BASELINE).add_bars(WINDOW)
    direct = flow_features(
        c, bars_of(c.symbol, WINDOW), 0.5, baseline=bars_of(c.symbol, BASELINE),
        atr_edges=config.atr_edges,
    )
    assert np.array_equal(w.features(config, 0.5), direct)


def test_a_model_trained_on_this_flow_matches_and_another_window_does_not() -> None:
    config = ConfirmConfig()
    metrics = {
        "features": list(FLOW_FEATURES),
        "schema_version": FLOW_SCHEMA_VERSION,
        "flow_params": config.flow_params(),
    }
    assert flow_mismatch(config, metrics) is None
    refusal = flow_mismatch(ConfirmConfig(window_bars=5), metrics)
    assert refusal is not None
    assert refusal.code is ReasonCode.FEATURE_SCHEMA_MISMATCH
    assert refusal.values["differs"] == "flow_params"
    stale_schema = flow_mismatch(config, {**metrics, "schema_version": "c0-old"})
    assert stale_schema is not None
    assert stale_schema.values["got_schema"] == "c0-old"
