"""Cross-section assembly: one event per bar close, never waiting forever.

A cycle (all bars with one open time) is complete when every expected symbol
has reported, or when the watermark passes: ``now >= bar close + grace``.
Expected symbols are those seen before (a pair listed mid-history is not
"missing" before its first bar). Pure: time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from decile.market.bars import Bars


@dataclass(frozen=True, slots=True)
class Cycle:
    ts: int  # bar open time, ms UTC
    bars: Bars
    missing: tuple[str, ...]
    expected: int


@dataclass
class Assembler:
    tf_ms: int
    grace_ms: int
    expected: set[str] = field(default_factory=set)
    _open: dict[int, list[Bars]] = field(default_factory=dict)
    _present: dict[int, set[str]] = field(default_factory=dict)
    closed_through: int = -(2**62)  # newest cycle already published

    def add(self, bars: Bars) -> Bars:
        """Accepted (quality-checked) bars of any cycles, in any grouping.

        Returns the bars that came too late: their cycle was already published
        (with the symbol listed as missing). The caller quarantines them as LATE,
        so they are kept and counted, never silently dropped or published twice.
        """
        if not len(bars):
            return bars
        lo, hi = int(bars.ts.min()), int(bars.ts.max())
        out = bars.slice(0, 0)
        if lo <= self.closed_through:
            late = bars.ts <= self.closed_through
            out, bars = bars.take(late), bars.take(~late)
        # a replay chunk is one whole cycle: no split needed
        groups = [hi] if lo == hi and len(bars) else sorted(set(bars.ts.tolist()))
        for ts in groups:
            part = bars if lo == hi else bars.take(bars.ts == ts)
            self._open.setdefault(ts, []).append(part)
            self._present.setdefault(ts, set()).update(part.row_names())
        return out

    def due(self, now_ms: int) -> list[Cycle]:
        """Cycles to publish now, oldest first."""
        out = []
        for ts in sorted(self._open):
            present = self._present[ts]
            complete = bool(self.expected) and self.expected <= present
            if not complete and now_ms < ts + self.tf_ms + self.grace_ms:
                break  # keep order: a later cycle never overtakes an open earlier one
            out.append(self._close(ts))
        return out

    def flush(self) -> list[Cycle]:
        """Everything still open (end of a replay)."""
        return [self._close(ts) for ts in sorted(self._open)]

    def _close(self, ts: int) -> Cycle:
        self.closed_through = max(self.closed_through, ts)
        parts = self._open.pop(ts)
        present = self._present.pop(ts)
        bars = Bars.concat(parts).sort() if len(parts) > 1 else parts[0]
        missing = tuple(sorted(self.expected - present))
        expected = len(self.expected | present)
        self.expected |= present
        return Cycle(ts, bars, missing, expected)

    @property
    def open_cycles(self) -> int:
        return len(self._open)
