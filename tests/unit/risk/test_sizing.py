"""Fixed fractional sizing and its caps (symbol, cluster, tail budget)."""

from __future__ import annotations

import pytest
from risk_support import CONFIG, book, ctx, position, wide

from decile.risk import evaluate, size


def test_fixed_fractional_risk_over_the_stop_distance() -> None:
    # 0.5% of 100,000 = 500 at risk over a 10.0 stop = 50 units (5,000 notional, 5% of equity)
    s = size(wide(), book(), CONFIG, entry_price=100.0)
    assert s.quantity == pytest.approx(50.0)
    assert s.target_quantity == pytest.approx(50.0)
    assert (s.binding, s.capped) == ("risk_per_trade", False)
    # caps: symbol 20,000 / 100; cluster 40,000 / 100; tail 3,000 / (1.5 x 10)
    assert s.caps == pytest.approx(
        {"symbol_exposure": 200.0, "cluster_exposure": 400.0, "cvar_budget": 200.0}
    )


def test_the_approved_intent_risks_exactly_the_fraction() -> None:
    v = evaluate(wide(), book(), CONFIG)
    assert v.intent is not None
    assert v.intent.quantity == pytest.approx(50.0)
    assert v.intent.risk_amount == pytest.approx(500.0)


def test_capped_by_the_symbol_exposure_headroom() -> None:
    # 18,000 already on the symbol leaves 2,000 of its 20,000: 20 units at 100.0
    held = (position("ALT/USDT", notional=18_000.0),)
    s = size(wide(), book(positions=held), CONFIG, entry_price=100.0)
    assert (s.quantity, s.binding) == (pytest.approx(20.0), "symbol_exposure")
    assert s.target_quantity == pytest.approx(50.0)


def test_capped_by_the_cluster_exposure_headroom() -> None:
    clusters = {"ALT/USDT": "alts", "ALT2/USDT": "alts"}
    held = (position("ALT2/USDT", notional=39_000.0, cluster="alts"),)
    s = size(wide(), book(positions=held, clusters=clusters), CONFIG, entry_price=100.0)
    assert (s.quantity, s.binding) == (pytest.approx(10.0), "cluster_exposure")


def test_capped_by_the_tail_budget_headroom() -> None:
    # open risk 1,800 x 1.5 (prior CVaR) = 2,700 of a 3,000 budget: 300 left, at 1.5 x 10.0
    # tail loss per unit -> 20 units
    held = tuple(position(f"C{i}/USDT", risk_amount=450.0) for i in range(4))
    s = size(wide(), book(positions=held), CONFIG, entry_price=100.0)
    assert (s.quantity, s.binding) == (pytest.approx(20.0), "cvar_budget")


def test_a_fatter_realised_tail_shrinks_the_tail_cap() -> None:
    # CVaR -2.0R: tail loss per unit = 2 x 10.0, so 3,000 of budget allows 150 units
    s = size(wide(), book(recent_r=(1.0,) * 19 + (-2.0,)), CONFIG, entry_price=100.0)
    assert s.caps["cvar_budget"] == pytest.approx(150.0)


def test_a_tight_stop_on_btc_is_capped_by_equity_relative_exposure() -> None:
    # 500 / 615.75 = 0.812 BTC = 50,548 notional; the 20% symbol cap allows 20,000 / 62,250
    v = evaluate(ctx(), book(), CONFIG)
    assert v.sizing is not None
    assert v.intent is not None
    assert v.sizing.target_quantity == pytest.approx(500 / 615.75)
    assert v.sizing.binding == "symbol_exposure"
    assert v.intent.quantity == pytest.approx(20_000 / 62_250)
    assert v.intent.risk_amount == pytest.approx(20_000 / 62_250 * 615.75)
    assert v.snapshot["binding"] == "symbol_exposure"
