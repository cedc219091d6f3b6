"""Entry type and price from the offset sign, stop and target from the planned entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from risk_support import CONFIG, NOW, ctx

from decile.risk import CandidateContext, bracket, entry, order_intent
from tests.unit.event_factories import confirm

ATR = 410.5
R = 1.5 * ATR  # 615.75


@pytest.mark.parametrize(
    ("side", "offset_katr", "kind", "price"),
    [
        ("long", 0.0, "market", 62_250.0),
        ("long", -0.2, "limit", 62_250.0 - 0.2 * ATR),  # wait for a lower price
        ("long", 0.1, "stop", 62_250.0 + 0.1 * ATR),  # buy once it breaks higher
        ("short", 0.0, "market", 62_250.0),
        ("short", -0.2, "limit", 62_250.0 + 0.2 * ATR),  # wait for a higher price
        ("short", 0.1, "stop", 62_250.0 - 0.1 * ATR),  # sell once it breaks lower
    ],
)
def test_entry_type_and_price_follow_the_offset_sign(
    side: str, offset_katr: float, kind: str, price: float
) -> None:
    e = entry(ctx(side=side, offset_katr=offset_katr))
    assert e.type == kind
    assert e.price == pytest.approx(price)


def test_a_market_entry_takes_the_last_close_the_decision_knew() -> None:
    # after a confirm window the price moved: a market order enters there, offsets do not
    assert entry(ctx(fill_price_hint=62_400.0)).price == 62_400.0
    assert entry(ctx(fill_price_hint=62_400.0, offset_katr=-0.2)).price == pytest.approx(
        62_250.0 - 0.2 * ATR)


def test_the_market_price_is_the_confirm_windows_last_close_else_the_candidates() -> None:
    hinted = confirm(fill_price_hint=62_400.0)
    assert CandidateContext.from_confirm(hinted, NOW).market_price == 62_400.0
    plain = confirm(fill_price_hint=None)
    assert CandidateContext.from_confirm(plain, NOW).market_price == plain.candidate.entry_price


def test_stop_is_one_r_against_and_target_rr_for_the_trade() -> None:
    long = bracket(ctx(), 62_000.0)
    assert (long.stop, long.take_profit) == pytest.approx((62_000.0 - R, 62_000.0 + 2 * R))
    short = bracket(ctx(side="short"), 62_000.0)
    assert (short.stop, short.take_profit) == pytest.approx((62_000.0 + R, 62_000.0 - 2 * R))


def test_order_intent_carries_geometry_expiry_and_risk() -> None:
    c = ctx(offset_katr=-0.2)
    intent = order_intent(c, entry(c), 0.25, CONFIG)
    price = 62_250.0 - 0.2 * ATR
    assert intent.symbol == "BTC/USDT"
    assert (intent.side, intent.entry_type) == ("long", "limit")
    assert intent.entry_price == pytest.approx(price)
    assert intent.stop_price == pytest.approx(price - R)
    assert intent.take_profit == pytest.approx(price + 2 * R)
    assert intent.expires_at == NOW + timedelta(minutes=15)  # 3 bars of 5m
    assert intent.risk_amount == pytest.approx(0.25 * R)


def test_a_stop_beyond_zero_is_refused_with_a_clear_error() -> None:
    c = ctx(entry_price=100.0, atr=80.0)  # stop distance 120 > price
    with pytest.raises(ValueError, match="order prices must be > 0"):
        order_intent(c, entry(c), 1.0, CONFIG)
