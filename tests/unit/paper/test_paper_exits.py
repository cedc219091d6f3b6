"""Exit rules and the trade's arithmetic: stop, take-profit, timeout, costs, R, excursions."""

from __future__ import annotations

import pytest
from paper_support import MODEL_VERSIONS, at, bar, decision, of_type

from decile.events import Fill, TradeClosed
from decile.paper import PaperBroker, PaperConfig

NEXT_OPEN = PaperConfig(market_entry="next_open")

START = PaperConfig().starting_equity


def _long_in(broker: PaperBroker, **kw: object) -> float:
    """A long market entry filled on bar 1 (open 100, range 1.5); returns the fill price."""
    broker.submit(decision(**kw))  # type: ignore[arg-type]
    [fill] = bar(broker, 1, 100.0, 101.0, 99.5, 100.5)
    return float(fill.price)


@pytest.fixture
def broker() -> PaperBroker:
    # market orders at the next bar's open: the bar rules are what these tests are about
    return PaperBroker(NEXT_OPEN)


def test_a_bar_touching_stop_and_take_profit_counts_as_the_stop(broker: PaperBroker) -> None:
    _long_in(broker)
    exit_fill, closed = bar(broker, 2, 100.0, 111.0, 94.0, 100.0)
    assert closed.exit_reason == "stop"
    # stop 95, slipped by 2 bps of 95 + 5% of the 17.0 range, sold
    assert exit_fill.price == pytest.approx(95.0 - 95.0 * 2e-4 - 0.05 * 17.0)
    assert (exit_fill.leg, exit_fill.liquidity) == ("exit", "taker")


def test_a_gap_through_the_stop_fills_at_the_open_minus_slippage(broker: PaperBroker) -> None:
    _long_in(broker)
    exit_fill, closed = bar(broker, 2, 93.0, 94.0, 92.0, 93.5)
    assert closed.exit_reason == "stop"
    assert exit_fill.price == pytest.approx(93.0 - 93.0 * 2e-4 - 0.05 * 2.0)


def test_take_profit_traded_through_fills_at_its_price_as_maker(broker: PaperBroker) -> None:
    _long_in(broker)
    assert bar(broker, 2, 105.0, 110.0, 104.0, 109.0) == []  # touched only
    exit_fill, closed = bar(broker, 3, 109.0, 110.5, 108.0, 110.0)
    assert (closed.exit_reason, exit_fill.price, exit_fill.liquidity) == (
        "take_profit", 110.0, "maker"
    )
    assert exit_fill.fee == pytest.approx(110.0 * 2.0 * 2e-4)


def test_timeout_exits_at_the_close_of_the_hth_bar_held(broker: PaperBroker) -> None:
    entry = _long_in(broker)  # bar 1 is the first bar held
    for k in range(2, 6):
        assert bar(broker, k, 100.0, 101.0, 99.0, 100.0) == []
    exit_fill, closed = bar(broker, 6, 100.0, 102.0, 99.0, 101.0)
    assert closed.exit_reason == "timeout"
    assert exit_fill.price == pytest.approx(101.0 - 101.0 * 2e-4 - 0.05 * 3.0)
    assert (closed.hold_bars, closed.entry_time, closed.exit_time) == (6, at(1), at(6))
    assert closed.entry_price == entry


def test_timeout_of_one_bar_exits_in_the_entry_bar() -> None:
    broker = PaperBroker(PaperConfig(market_entry="next_open", timeout_bars=1))
    broker.submit(decision())
    entry, exit_fill, closed = bar(broker, 1, 100.0, 101.0, 99.5, 100.5)
    assert (entry.leg, exit_fill.leg, closed.exit_reason, closed.hold_bars) == (
        "entry", "exit", "timeout", 1
    )


def test_a_market_entry_can_take_profit_in_its_entry_bar(broker: PaperBroker) -> None:
    broker.submit(decision())
    events = bar(broker, 1, 100.0, 111.0, 99.5, 110.5)
    [closed] = of_type(events, TradeClosed)
    assert (closed.exit_reason, closed.hold_bars) == ("take_profit", 1)


def test_a_limit_entry_cannot_take_profit_in_its_fill_bar(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="limit", entry=99.0, take_profit=101.0))
    events = bar(broker, 1, 100.0, 102.0, 98.0, 100.0)
    assert [e.leg for e in of_type(events, Fill)] == ["entry"]
    assert broker.ledger().open_positions == 1


def test_a_limit_entry_can_be_stopped_in_its_fill_bar_at_the_stop(broker: PaperBroker) -> None:
    broker.submit(decision(entry_type="limit", entry=99.0))
    entry, exit_fill, closed = bar(broker, 1, 100.0, 100.0, 94.0, 94.5)
    assert entry.price == 99.0
    assert closed.exit_reason == "stop"
    # opened mid-bar: the stop price itself, not the open, then slipped
    assert exit_fill.price == pytest.approx(95.0 - 95.0 * 2e-4 - 0.05 * 6.0)


def test_long_trade_costs_r_and_excursions_by_hand(broker: PaperBroker) -> None:
    d = decision(quantity=2.0)  # entry 100, stop 95, tp 110: risk 2 * 5 = 10
    broker.submit(d)
    [entry] = bar(broker, 1, 100.0, 102.0, 99.0, 101.0)
    assert entry.price == pytest.approx(100.17)  # 100 + 0.02 + 5% of 3.0
    led = broker.ledger()
    assert led.cash == pytest.approx(START - 100.17 * 2 * 5e-4)
    assert led.unrealised_pnl == pytest.approx((101.0 - 100.17) * 2)
    assert led.equity == pytest.approx(led.cash + led.unrealised_pnl)

    exit_fill, closed = bar(broker, 2, 101.0, 111.0, 100.5, 110.5)
    entry_fee, exit_fee = 100.17 * 2 * 5e-4, 110.0 * 2 * 2e-4
    pnl = (110.0 - 100.17) * 2 - entry_fee - exit_fee
    assert isinstance(closed, TradeClosed)
    assert closed.pnl == pytest.approx(pnl)
    assert closed.fees == pytest.approx(entry_fee + exit_fee)
    assert closed.realised_r == pytest.approx(pnl / 10.0)
    assert closed.mae_r == pytest.approx(-(100.17 - 99.0) * 2 / 10.0)  # entry bar low
    assert closed.mfe_r == pytest.approx((110.0 - 100.17) * 2 / 10.0)  # capped at the exit
    assert (closed.hold_bars, closed.decision_id, closed.exit_reason) == (2, d.id, "take_profit")
    assert (closed.p_win, closed.strategy, closed.model_versions) == (
        0.57, "breakout", MODEL_VERSIONS
    )
    assert exit_fill.order_id == entry.order_id
    led = broker.ledger()
    assert led.equity == pytest.approx(START + pnl)
    assert led.realised_pnl == pytest.approx(pnl)
    assert led.fees == pytest.approx(entry_fee + exit_fee)
    assert (led.open_positions, led.closed_trades) == (0, 1)


def test_short_trade_costs_r_and_excursions_by_hand(broker: PaperBroker) -> None:
    broker.submit(decision(side="short", entry=100.0, stop=104.0, take_profit=92.0,
                           quantity=1.0))
    [entry] = bar(broker, 1, 100.0, 101.0, 99.0, 99.5)
    assert entry.price == pytest.approx(100.0 - 0.02 - 0.1)  # sold lower
    exit_fill, closed = bar(broker, 2, 99.5, 104.5, 99.0, 104.0)
    buy_back = 104.0 + 104.0 * 2e-4 + 0.05 * 5.5
    assert exit_fill.price == pytest.approx(buy_back)
    fees = 99.88 * 5e-4 + buy_back * 5e-4
    pnl = (99.88 - buy_back) - fees
    assert closed.pnl == pytest.approx(pnl)
    assert closed.realised_r == pytest.approx(pnl / 4.0)
    assert closed.mae_r == pytest.approx(-(buy_back - 99.88) / 4.0)
    assert closed.mfe_r == pytest.approx((99.88 - 99.0) / 4.0)  # entry bar low


def test_stop_bar_counts_no_favourable_move(broker: PaperBroker) -> None:
    entry = _long_in(broker)
    _, closed = bar(broker, 2, 100.0, 111.0, 94.0, 100.0)  # the stop came first
    assert closed.mfe_r == pytest.approx((101.0 - entry) * 2.0 / 10.0)  # bar 1's high only


def test_excursions_track_the_worst_and_best_bars_held(broker: PaperBroker) -> None:
    entry = _long_in(broker)
    assert entry == pytest.approx(100.095)
    bar(broker, 2, 100.0, 104.0, 97.0, 103.0)
    bar(broker, 3, 103.0, 106.0, 102.0, 105.0)
    for k in (4, 5):
        bar(broker, k, 105.0, 105.5, 104.5, 105.0)
    _, closed = bar(broker, 6, 105.0, 105.5, 104.5, 105.0)
    assert closed.exit_reason == "timeout"
    assert closed.mae_r == pytest.approx(-(entry - 97.0) * 2.0 / 10.0)
    assert closed.mfe_r == pytest.approx((106.0 - entry) * 2.0 / 10.0)
    gross_r = (closed.exit_price - entry) * 2.0 / 10.0
    assert closed.mae_r <= gross_r <= closed.mfe_r
