"""Recent bar cross-sections of the window timeframe: what a new window opens with.

A candidate may arrive before or after the bars of its baseline and window (the
bars and candidates consumers run side by side), so every window is opened with
the symbol's bars already seen. Cross-sections are kept as they came (one
read-only matrix each, not a Python object per bar) for ``keep`` bars of time
behind the newest. The cross-section times are also the event clock that
expires windows in event mode (:mod:`decile_confirm.book`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from decile.confirm import FlowBar
from decile.events import BarBatch
from decile.market.timeframes import Timeframe, to_ms


@dataclass(frozen=True, slots=True)
class Section:
    """One cross-section: bar open time (ms), its shard, symbols and OHLCV rows."""

    bar_ms: int
    shard: int
    symbols: tuple[str, ...]
    values: np.ndarray


class BarHistory:
    """Cross-sections of one timeframe in bar-time order, ``keep`` bars deep."""

    def __init__(self, tf: Timeframe, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1 bar, got {keep}")
        self.tf = tf
        self.keep = keep
        self._ms: list[int] = []  # bar_ms of each section, sorted (bisect)
        self._sections: list[Section] = []
        self.trimmed = False  # bars were dropped for age: older ones are no longer known

    def __len__(self) -> int:
        return len(self._sections)

    @property
    def newest_close_ms(self) -> int | None:
        """Close time of the newest cross-section seen (ms); None before any."""
        return self._ms[-1] + self.tf.ms if self._ms else None

    @property
    def oldest_ms(self) -> int | None:
        return self._ms[0] if self._ms else None

    def add(self, batch: BarBatch) -> bool:
        """Keep ``batch``; False when it is a repeat (same bar time and shard) or too old."""
        bar_ms = to_ms(batch.bar_time)
        newest = self._ms[-1] if self._ms else bar_ms
        if bar_ms <= newest - self.keep * self.tf.ms:
            self.trimmed = True  # as good as trimmed: a window may need it and not find it
            return False
        lo = bisect.bisect_left(self._ms, bar_ms)
        hi = bisect.bisect_right(self._ms, bar_ms)
        if any(s.shard == batch.shard for s in self._sections[lo:hi]):
            return False
        symbols = batch.symbols
        if self._sections and self._sections[-1].symbols == symbols:
            symbols = self._sections[-1].symbols  # one tuple shared by a stable universe
        self._ms.insert(hi, bar_ms)
        self._sections.insert(hi, Section(bar_ms, batch.shard, symbols, batch.values))
        self._trim()
        return True

    def keep_batch(self, batch: BarBatch) -> None:
        """:meth:`add` without the answer (a replay's ``apply``)."""
        self.add(batch)

    def _trim(self) -> None:
        cut = bisect.bisect_right(self._ms, self._ms[-1] - self.keep * self.tf.ms)
        if cut:
            del self._ms[:cut]
            del self._sections[:cut]
            self.trimmed = True

    def covers(self, lo_ms: int) -> bool:
        """Whether every bar from ``lo_ms`` on that was seen is still here."""
        return not self.trimmed or (bool(self._ms) and self._ms[0] <= lo_ms)

    def bars(self, symbol: str, lo_ms: int, hi_ms: int) -> list[FlowBar]:
        """``symbol``'s bars opening in ``[lo_ms, hi_ms)``, in time order."""
        out: list[FlowBar] = []
        start = bisect.bisect_left(self._ms, lo_ms)
        stop = bisect.bisect_left(self._ms, hi_ms)
        for section in self._sections[start:stop]:
            row = row_of(section.symbols, symbol)
            if row is not None:
                out.append(flow_bar(section.bar_ms, section.values[row]))
        return out

    def first_close_at_or_after(self, ms: int) -> int | None:
        """Close time (ms) of the first cross-section closing at or after ``ms``."""
        i = bisect.bisect_left(self._ms, ms - self.tf.ms)
        return self._ms[i] + self.tf.ms if i < len(self._ms) else None


def row_of(symbols: tuple[str, ...], symbol: str) -> int | None:
    try:
        return symbols.index(symbol)
    except ValueError:
        return None


def flow_bar(bar_ms: int, row: np.ndarray) -> FlowBar:
    o, h, lo, c, v = (float(x) for x in row)
    return FlowBar(bar_ms, o, h, lo, c, v)
