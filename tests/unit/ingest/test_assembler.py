"""Cross-section assembly: complete cycles go at once, late ones at the watermark."""

from __future__ import annotations

import numpy as np

from decile.market.bars import Bars
from decile_ingest.assembler import Assembler

M5 = 300_000


def bars(symbols: list[str], ts: int) -> Bars:
    n = len(symbols)
    one = np.ones(n)
    return Bars.from_arrays(np.array(symbols), np.full(n, ts, dtype=np.int64), one, one * 2,
                            one * 0.5, one, one)


def test_a_cycle_with_every_expected_symbol_is_published_at_once() -> None:
    a = Assembler(M5, grace_ms=10_000, expected={"A/B", "C/D"})
    a.add(bars(["A/B", "C/D"], 0))
    [cycle] = a.due(now_ms=0)
    assert cycle.ts == 0
    assert cycle.missing == ()
    assert cycle.bars.row_names() == ("A/B", "C/D")


def test_a_late_symbol_is_listed_as_missing_once_the_watermark_passes() -> None:
    a = Assembler(M5, grace_ms=10_000, expected={"A/B", "C/D"})
    a.add(bars(["A/B"], 0))
    assert a.due(now_ms=M5 + 9_999) == []  # still within grace: wait
    [cycle] = a.due(now_ms=M5 + 10_000)
    assert cycle.missing == ("C/D",)
    assert cycle.expected == 2


def test_cycles_leave_in_time_order_even_when_a_later_one_completes_first() -> None:
    a = Assembler(M5, grace_ms=0, expected={"A/B", "C/D"})
    a.add(bars(["A/B"], 0))
    a.add(bars(["A/B", "C/D"], M5))
    assert a.due(now_ms=M5 - 1) == []  # the complete later cycle does not overtake
    out = a.due(now_ms=M5)
    assert [c.ts for c in out] == [0, M5]


def test_symbols_seen_for_the_first_time_are_not_missing_before_they_listed() -> None:
    a = Assembler(M5, grace_ms=0)
    a.add(bars(["A/B"], 0))
    [first] = a.due(now_ms=M5)
    assert first.missing == ()
    a.add(bars(["A/B", "NEW/USDT"], M5))
    [second] = a.due(now_ms=2 * M5)
    assert second.missing == ()
    a.add(bars(["A/B"], 2 * M5))
    [third] = a.flush()
    assert third.missing == ("NEW/USDT",)


def test_a_bar_arriving_after_its_cycle_was_published_is_returned_as_late() -> None:
    a = Assembler(M5, grace_ms=0, expected={"A/B", "C/D"})
    a.add(bars(["A/B"], 0))
    [cycle] = a.due(now_ms=M5)
    assert cycle.missing == ("C/D",)
    late = a.add(bars(["C/D"], 0))
    assert late.row_names() == ("C/D",)
    assert a.open_cycles == 0
