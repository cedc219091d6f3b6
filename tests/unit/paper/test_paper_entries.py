"""Entry rules: when and at what price each order type fills, and when it expires instead."""

from __future__ import annotations

import numpy as np
import pytest
from paper_support import at, bar, decision, of_type

from decile.events import Fill, Order
from decile.paper import PaperBroker, PaperConfig

NEXT_OPEN = PaperConfig(market_entry="next_open")


@pytest.fixture
def broker() -> PaperBroker:
    # market orders at the next bar's open: the bar rules are what these tests are about
    return PaperBroker(NEXT_OPEN)


def test_submit_accepts_an_approved_decision_as_an_order(broker: PaperBroker) -> None:
    d = decision(entry_type="limit", entry=99.0)
    [order] = broker.submit(d)
    assert isinstance(order, Order)
    assert (order.status, order.decision_id, order.entry_type, order.price) == (
        "accepted", d.id, "limit", 99.0
    )
    assert order.trace_id == d.trace_id
    assert order.expires_at == at(7)  # submitted for bar 0, six bars to fill
    assert broker.ledger().open_orders == 1


def test_market_order_fills_at_next_open_plus_slippage(broker: PaperBroker) -> None:
    broker.submit(decision(quantity=2.0))
    [fill] = bar(broker, 1, 100.0, 102.0, 99.0, 101.0)
    # slippage: 2 bps of 100 + 5% of the 3.0 range = 0.02 + 0.15
    assert fill.price == pytest.approx(100.17)
    assert fill.liquidity == "taker"
    assert fill.fee == pytest.approx(100.17 * 2.0 * 5e-4)
    assert (fill.leg, fill.bar_time) == ("entry", at(1))


def test_no_fill_on_the_bar_the_decision_was_made_on(broker: PaperBroker) -> None:
    broker.submit(decision(bar=0))
    assert bar(broker, 0, 100.0, 102.0, 99.0, 101.0) == []
    assert broker.ledger().open_orders == 1
    assert of_type(bar(broker, 1, 100.0, 102.0, 99.0, 101.0), Fill)


def test_a_later_decision_time_moves_the_submission_bar(broker: PaperBroker) -> None:
    # candidate on bar 0, confirmed 12 minutes later: bar 1 (opened at 12:05) was
    # already seen when it decided (it closed at 12:10), so bar 2 is the first to fill
    broker.submit(decision(bar=0, decided_at=at(2) + (at(1) - at(0)) * 0.4))
    assert bar(broker, 1, 100.0, 102.0, 99.0, 101.0) == []
    assert of_type(bar(broker, 2, 100.0, 102.0, 99.0, 101.0), Fill)


def test_decision_latency_after_the_close_does_not_skip_a_bar(broker: PaperBroker) -> None:
    broker.submit(decision(bar=0, decided_at=at(1).replace(microsecond=250_000)))
    assert of_type(bar(broker, 1, 100.0, 102.0, 99.0, 101.0), Fill)


def test_limit_touched_but_not_traded_through_does_not_fill(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="limit", entry=99.0))
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.0) == []


def test_limit_traded_through_fills_at_the_limit_as_maker(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="limit", entry=99.0, quantity=2.0))
    [fill] = bar(broker, 1, 100.0, 100.5, 98.5, 99.5)
    assert (fill.price, fill.liquidity) == (99.0, "maker")
    assert fill.fee == pytest.approx(99.0 * 2.0 * 2e-4)


def test_limit_touch_fills_when_configured() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", limit_touch_fills=True))
    broker.submit(decision(entry_type="limit", entry=99.0))
    [fill] = bar(broker, 1, 100.0, 101.0, 99.0, 100.0)
    assert fill.price == 99.0


def test_short_limit_fills_when_the_bar_trades_above_it(broker: PaperBroker) -> None:
    broker.submit(decision(side="short", entry_type="limit", entry=101.0, stop=106.0,
                           take_profit=91.0))
    [fill] = bar(broker, 1, 100.0, 101.5, 99.8, 100.5)
    assert (fill.price, fill.liquidity, fill.side) == (101.0, "maker", "short")


def test_stop_entry_triggers_on_a_touch_at_the_stop_plus_slippage(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="stop", entry=101.0, stop=96.0, take_profit=111.0))
    [fill] = bar(broker, 1, 100.0, 101.0, 99.5, 100.8)
    assert fill.price == pytest.approx(101.0 + 101.0 * 2e-4 + 0.05 * 1.5)
    assert fill.liquidity == "taker"


def test_stop_entry_gapped_past_fills_at_the_open_plus_slippage(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="stop", entry=101.0, stop=96.0, take_profit=111.0))
    [fill] = bar(broker, 1, 102.0, 103.0, 101.5, 102.5)
    assert fill.price == pytest.approx(102.0 + 102.0 * 2e-4 + 0.05 * 1.5)


def test_short_stop_entry_gapped_below_fills_at_the_open_minus_slippage(
    broker: PaperBroker,
) -> None:
    broker.submit(decision(side="short", entry_type="stop", entry=99.0, stop=104.0,
                           take_profit=89.0))
    [fill] = bar(broker, 1, 98.0, 98.5, 97.0, 97.5)
    assert fill.price == pytest.approx(98.0 - 98.0 * 2e-4 - 0.05 * 1.5)


def test_stop_entry_not_reached_does_not_fill(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="stop", entry=101.0, stop=96.0, take_profit=111.0))
    assert bar(broker, 1, 100.0, 100.9, 99.5, 100.8) == []


def test_limit_never_reached_expires_on_its_last_bar() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", order_expiry_bars=3))
    d = decision(entry_type="limit", entry=90.0, stop=85.0)
    broker.submit(d)
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.0) == []
    assert bar(broker, 2, 100.0, 101.0, 99.0, 100.0) == []
    [expired] = bar(broker, 3, 100.0, 101.0, 99.0, 100.0)
    assert isinstance(expired, Order)
    assert (expired.status, expired.decision_id, expired.expires_at) == ("expired", d.id, at(4))
    assert expired.ts_event == at(4)  # known when bar 3 closed
    assert broker.ledger().open_orders == 0
    assert bar(broker, 4, 100.0, 101.0, 89.0, 100.0) == []


def test_intent_expiry_earlier_than_the_bar_limit_wins() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", order_expiry_bars=6))
    broker.submit(decision(entry_type="limit", entry=90.0, stop=85.0, expires_at=at(3)))
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.0) == []
    [expired] = bar(broker, 2, 100.0, 101.0, 99.0, 100.0)
    assert (expired.status, expired.expires_at) == ("expired", at(3))


def test_an_order_filling_on_its_last_bar_does_not_expire() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", order_expiry_bars=2))
    broker.submit(decision(entry_type="limit", entry=99.0))
    assert bar(broker, 1, 100.0, 101.0, 99.5, 100.0) == []
    events = bar(broker, 2, 100.0, 101.0, 98.0, 100.0)
    assert [type(e) for e in events] == [Fill]


def test_a_symbol_absent_from_the_cross_section_does_not_fill(broker: PaperBroker) -> None:
    broker.submit(decision(symbol="BTC/USDT"))
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.0, symbol="ETH/USDT") == []
    nan = broker.on_bars(at(2), ("BTC/USDT",), np.array([[np.nan, 101.0, 99.0, 100.0, 1.0]]))
    assert nan == []
    assert of_type(bar(broker, 3, 100.0, 101.0, 99.0, 100.0), Fill)


def test_a_late_decision_fills_only_after_the_bars_already_processed(
    broker: PaperBroker,
) -> None:
    for k in range(3):
        bar(broker, k, 100.0, 101.0, 99.0, 100.0)
    broker.submit(decision(bar=0))  # arrives after bar 2 was processed
    [fill] = bar(broker, 3, 104.0, 105.0, 103.0, 104.0)
    assert fill.bar_time == at(3)


def test_a_decision_past_its_deadline_on_arrival_expires_on_the_next_bar() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", order_expiry_bars=2))
    for k in range(6):
        bar(broker, k, 100.0, 101.0, 99.0, 100.0)
    [accepted] = broker.submit(decision(bar=0))
    assert accepted.status == "accepted"
    [expired] = bar(broker, 6, 100.0, 101.0, 99.0, 100.0)
    assert expired.status == "expired"


def test_an_intent_with_the_stop_above_a_long_entry_is_cancelled(broker: PaperBroker) -> None:
    d = decision(entry=100.0, stop=101.0, take_profit=110.0)
    [order] = broker.submit(d)
    assert order.status == "cancelled"
    assert broker.ledger().open_orders == 0
    assert broker.submit(d) == []
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.0) == []
