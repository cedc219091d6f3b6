"""The confirm service's bar history: bars a window opens with, and the cross-section clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from decile.confirm import FlowBar
from decile.events import BarBatch
from decile.market.timeframes import Timeframe, to_ms
from decile_confirm.history import BarHistory

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
FIVE = 300_000


def section(k: int, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"), shard: int = 0,
            close: float = 100.0) -> BarBatch:
    rows = [[close + k, close + k + 1, close + k - 1, close + k + 0.5, 10.0 + i]
            for i in range(len(symbols))]
    return BarBatch(tf="5m", bar_time=T0 + timedelta(minutes=5 * k), symbols=symbols,
                    shard=shard, values=np.array(rows), producer="test")


def ms(k: int) -> int:
    return to_ms(T0) + k * FIVE


def test_a_symbols_bars_come_back_in_time_order_from_the_range_asked() -> None:
    h = BarHistory(Timeframe.M5, keep=100)
    for k in (0, 1, 3, 2):
        h.add(section(k))
    h.add(section(4, ("ETH/USDT",)))
    assert [b.ts for b in h.bars("BTC/USDT", ms(1), ms(5))] == [ms(1), ms(2), ms(3)]
    first = h.bars("ETH/USDT", ms(0), ms(1))[0]
    assert first == FlowBar(ms(0), 100.0, 101.0, 99.0, 100.5, 11.0)
    assert h.bars("SOL/USDT", ms(0), ms(5)) == []


def test_only_keep_bars_of_time_are_kept_behind_the_newest() -> None:
    h = BarHistory(Timeframe.M5, keep=3)
    for k in range(6):
        h.add(section(k))
    assert h.oldest_ms == ms(3)
    assert not h.add(section(2))  # older than what is kept: refused
    assert h.newest_close_ms == ms(6)


def test_a_repeated_cross_section_is_kept_once_and_another_shard_is_kept() -> None:
    h = BarHistory(Timeframe.M5, keep=10)
    assert h.add(section(0))
    assert not h.add(section(0, close=500.0))  # a redelivery: the first copy stays
    assert h.add(section(0, ("SOL/USDT",), shard=1))
    assert len(h) == 2
    assert h.bars("BTC/USDT", ms(0), ms(1))[0].close == 100.5
    assert len(h.bars("SOL/USDT", ms(0), ms(1))) == 1


@pytest.mark.parametrize(("deadline", "expected"), [
    (ms(2), ms(2)), (ms(2) + 1, ms(3)), (ms(4) + 60_000, ms(5)), (ms(9), None),
])
def test_the_first_cross_section_closing_at_or_after_a_time(
    deadline: int, expected: int | None
) -> None:
    h = BarHistory(Timeframe.M5, keep=10)
    for k in range(5):
        h.add(section(k))  # closes at ms(1) .. ms(5)
    assert h.first_close_at_or_after(deadline) == expected


def test_once_bars_left_for_age_a_range_before_the_oldest_kept_is_not_covered() -> None:
    h = BarHistory(Timeframe.M5, keep=3)
    for k in range(3):
        h.add(section(k))
    assert h.covers(ms(-10))  # nothing dropped yet: whatever came is here
    h.add(section(3))
    assert not h.covers(ms(0))
    assert h.covers(ms(1))
