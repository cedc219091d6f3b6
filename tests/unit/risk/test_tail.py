"""CVaR of realised R and the book's tail budget."""

from __future__ import annotations

import pytest
from risk_support import CONFIG, book, position

from decile.risk import RiskConfig, cvar, tail


def test_cvar_is_the_mean_of_the_worst_tail() -> None:
    assert cvar([1.0] * 19 + [-3.0], 0.95) == -3.0  # 5% of 20 = one trade (no float drift)
    assert cvar([1.0] * 38 + [-3.0, -2.0], 0.95) == -2.5  # 5% of 40 = two
    assert cvar([0.5], 0.95) == 0.5  # never fewer than one


def test_the_prior_stands_in_until_enough_trades_closed() -> None:
    t = tail(book(recent_r=(-4.0,) * 19), CONFIG)
    assert (t.cvar_r, t.trades) == (-1.5, 0)
    assert tail(book(recent_r=(-4.0,) * 20), CONFIG).cvar_r == -4.0


def test_only_the_most_recent_window_counts() -> None:
    config = RiskConfig(cvar_window=20)
    t = tail(book(recent_r=(-9.0,) * 5 + (1.0,) * 19 + (-1.1,)), config)
    assert (t.cvar_r, t.trades) == (-1.1, 20)


def test_book_tail_scales_open_risk_by_the_cvar_multiplier_never_below_the_stop() -> None:
    held = (position("ETH/USDT", risk_amount=400.0), position("SOL/USDT", risk_amount=100.0))
    fat = tail(book(positions=held, recent_r=(1.0,) * 19 + (-2.0,)), CONFIG)
    assert (fat.multiplier, fat.book_tail, fat.budget) == (2.0, 1_000.0, 3_000.0)
    assert fat.headroom == 2_000.0
    thin = tail(book(positions=held, recent_r=(1.0,) * 19 + (-0.5,)), CONFIG)
    assert thin.multiplier == 1.0  # a tail better than the stop still risks the stop
    assert thin.book_tail == pytest.approx(500.0)
