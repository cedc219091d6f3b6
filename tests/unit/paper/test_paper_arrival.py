"""Market orders fill as they arrive (``market_entry="arrival"``, the default).

The fill is priced by the last close the decision knew (the intent's entry
price), slipped by bps plus the range fraction of the candidate's ATR; the
position's first bar of exposure is the bar after the submission bar.
"""

from __future__ import annotations

import pytest
from paper_support import at, bar, decision, of_type

from decile.events import Fill, Order, TradeClosed
from decile.paper import PaperBroker, PaperConfig


@pytest.fixture
def broker() -> PaperBroker:
    return PaperBroker(PaperConfig())


def test_a_market_order_fills_on_arrival_at_its_price_slipped_by_the_atr(
    broker: PaperBroker,
) -> None:
    d = decision(bar=0, entry=100.0, stop=95.0, quantity=2.0)  # ATR 5
    order, fill = broker.submit(d)
    assert isinstance(order, Order)
    assert order.status == "accepted"
    assert isinstance(fill, Fill)
    # slippage: 2 bps of 100 + 5% of the ATR 5.0 = 0.02 + 0.25, bought higher
    assert fill.price == pytest.approx(100.27)
    assert (fill.leg, fill.liquidity, fill.order_id) == ("entry", "taker", order.id)
    assert fill.fee == pytest.approx(100.27 * 2.0 * 5e-4)
    assert (fill.bar_time, fill.ts_event) == (at(0), d.ts_event)  # bar 0's close, now
    ledger = broker.ledger()
    assert (ledger.open_orders, ledger.open_positions) == (0, 1)


def test_a_short_market_order_sells_lower() -> None:
    broker = PaperBroker(PaperConfig())
    _, fill = broker.submit(decision(side="short", entry=100.0, stop=104.0, take_profit=92.0))
    assert fill.price == pytest.approx(100.0 - 0.02 - 0.05 * 4.0)


def test_the_submission_bar_delivered_after_the_fill_does_nothing_to_it(
    broker: PaperBroker,
) -> None:
    broker.submit(decision(bar=0))  # stop 95, take-profit 110
    assert bar(broker, 0, 100.0, 111.0, 90.0, 100.0) == []  # before the fill: no exit
    assert broker.ledger().open_positions == 1
    [_, closed] = bar(broker, 1, 100.0, 101.0, 94.0, 96.0)  # the first bar held
    assert isinstance(closed, TradeClosed)
    assert (closed.exit_reason, closed.entry_time, closed.hold_bars) == ("stop", at(1), 1)


def test_the_first_bar_held_is_held_from_its_open(broker: PaperBroker) -> None:
    broker.submit(decision(bar=0))
    _, closed = bar(broker, 1, 93.0, 99.0, 92.0, 98.0)  # gapped through the stop at 95
    assert closed.exit_reason == "stop"
    assert closed.exit_price == pytest.approx(93.0 - 93.0 * 2e-4 - 0.05 * 7.0)


def test_timeout_counts_from_the_bar_after_the_submission_bar() -> None:
    broker = PaperBroker(PaperConfig(timeout_bars=2))
    broker.submit(decision(bar=0))
    assert bar(broker, 1, 100.0, 101.0, 99.0, 100.5) == []
    [_, closed] = bar(broker, 2, 100.5, 101.0, 99.5, 100.8)
    assert (closed.exit_reason, closed.hold_bars) == ("timeout", 2)


def test_a_late_market_order_fills_at_the_next_open_instead(broker: PaperBroker) -> None:
    bar(broker, 1, 100.0, 101.0, 99.0, 100.5)  # the broker is past the submission bar
    [order] = broker.submit(decision(bar=0))
    assert order.status == "accepted"
    [fill] = of_type(bar(broker, 2, 101.0, 102.0, 100.0, 101.5), Fill)
    assert fill.price == pytest.approx(101.0 + 101.0 * 2e-4 + 0.05 * 2.0)
    assert fill.bar_time == at(2)


def test_next_open_mode_never_fills_on_arrival() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open"))
    assert [type(e) for e in broker.submit(decision(bar=0))] == [Order]
    assert of_type(bar(broker, 1, 100.0, 101.0, 99.0, 100.5), Fill)


def test_a_repeat_of_a_filled_market_decision_does_nothing(broker: PaperBroker) -> None:
    d = decision(bar=0)
    assert len(broker.submit(d)) == 2
    before = broker.snapshot()
    assert broker.submit(d) == []
    assert broker.snapshot() == before


def test_an_unknown_market_entry_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="market_entry"):
        PaperConfig(market_entry="open")  # type: ignore[arg-type]
