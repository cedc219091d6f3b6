"""Net expected value in R, worked by hand."""

from __future__ import annotations

import pytest
from risk_support import CONFIG, ctx

from decile.risk import RiskConfig, edge


def test_net_ev_worked_by_hand() -> None:
    # p_win 0.6, target 1.5R: gross = 0.6 x 1.5 - 0.4 x 1 = 0.5R
    # stop = 1 x ATR 2 = 2.0; round trip = 2 x (5 + 2) = 14 bps of 100 = 0.14 = 0.07R
    e = edge(ctx(p_win=0.6, rr_target=1.5, entry_price=100.0, atr=2.0, sl_katr=1.0), CONFIG)
    assert e.gross_r == pytest.approx(0.5)
    assert e.cost_r == pytest.approx(0.07)
    assert e.net_r == pytest.approx(0.43)
    assert e.cost_share == pytest.approx(0.14)


def test_a_tighter_stop_makes_the_same_fees_a_bigger_share_of_r() -> None:
    # fees 10 + slippage 5 per side = 30 bps round trip = 0.30 on a 100.0 price
    config = RiskConfig(fee_bps=10.0, slippage_bps=5.0)
    wide = edge(ctx(p_win=0.6, rr_target=1.5, entry_price=100.0, atr=2.0, sl_katr=1.0), config)
    tight = edge(ctx(p_win=0.6, rr_target=1.5, entry_price=100.0, atr=1.0, sl_katr=1.0), config)
    assert (wide.cost_r, wide.cost_share) == pytest.approx((0.15, 0.30))  # passes 40%
    assert (tight.cost_r, tight.cost_share) == pytest.approx((0.30, 0.60))  # fails 40%
    assert tight.net_r == pytest.approx(0.2)  # still positive: only the share gate refuses it


def test_no_gross_edge_means_an_infinite_cost_share() -> None:
    e = edge(ctx(p_win=0.25, rr_target=2.0), CONFIG)  # 0.5 - 0.75 = -0.25R
    assert e.gross_r == pytest.approx(-0.25)
    assert e.cost_share == float("inf")
