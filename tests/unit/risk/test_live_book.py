"""The risk service's book sees the book *as of* the decision time, whatever arrived first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from decile.events import BarBatch
from decile.risk import KillState
from decile_risk.book import LiveBook
from tests.unit.event_factories import fill, trade_closed

BAR = timedelta(minutes=5)
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMS = ("BTC/USDT", "ETH/USDT")


def bars(t: datetime, close: float) -> BarBatch:
    row = [close, close + 1, close - 1, close, 10.0]
    return BarBatch(tf="5m", bar_time=t, symbols=SYMS, values=np.array([row, row]),
                    producer="ingest")


def test_exec_events_count_only_before_the_decision_time() -> None:
    book = LiveBook(10_000.0, bar=BAR)
    decided = T0 + 2 * BAR
    book.on_exec(trade_closed(pnl=-100.0, ts_event=decided, realised_r=-1.0))  # same instant
    book.on_exec(trade_closed(pnl=50.0, ts_event=decided - BAR, realised_r=0.5))
    state = book.state(decided, KillState())
    assert state.equity == 10_050.0
    assert state.recent_r == (0.5,)
    later = book.state(decided + BAR, KillState())
    assert later.equity == 9_950.0
    assert later.recent_r == (0.5, -1.0)


def test_a_bar_closing_at_the_decision_time_is_not_seen_yet() -> None:
    book = LiveBook(10_000.0, bar=BAR)
    book.on_bars(bars(T0, 100.0))
    book.on_bars(bars(T0 + BAR, 101.0))  # closes at T0 + 2 BAR
    state = book.state(T0 + 2 * BAR, KillState(), "BTC/USDT")
    assert state.last_bar_time == {"BTC/USDT": T0}
    later = book.state(T0 + 2 * BAR + timedelta(seconds=1), KillState(), "BTC/USDT")
    assert later.last_bar_time == {"BTC/USDT": T0 + BAR}


def test_arrival_order_of_bars_and_fills_does_not_change_the_decision_state() -> None:
    entry = fill(ts_event=T0 + BAR, price=100.0, quantity=2.0, bar_time=T0)
    one, two = LiveBook(10_000.0, bar=BAR), LiveBook(10_000.0, bar=BAR)
    for b in (bars(T0, 100.0), bars(T0 + BAR, 103.0)):
        one.on_bars(b)
    one.on_exec(entry)
    two.on_exec(entry)
    for b in (bars(T0, 100.0), bars(T0 + BAR, 103.0)):
        two.on_bars(b)
    now = T0 + 2 * BAR
    a, b = one.state(now, KillState(), "BTC/USDT"), two.state(now, KillState(), "BTC/USDT")
    assert (a.equity, a.positions, a.last_bar_time) == (b.equity, b.positions, b.last_bar_time)
    assert a.equity == 10_000.0  # marked at the bar closed before now (100), not 103
