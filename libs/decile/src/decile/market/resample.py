"""Higher-timeframe bars (15m, 1h, 4h...) built from closed base bars, in batch and online.

Periods are aligned to UTC boundaries (multiples of the target length from
the epoch). Per symbol and period: open = first open, high = max, low = min,
close = last close, volume = sum, over the base bars present. Missing base
bars are not filled: the higher bar is built from what exists, and a symbol
with no base bar in a period has no bar for it.

Closing rule (both implementations): a period ``[P, P + target)`` closes for
ALL symbols at once when the first base cross-section with
``ts >= P + target - base`` arrives, i.e. its last base cycle, or, if that
cycle never came, the first cycle of any later period. Every symbol's bar for
the period is then emitted in one cross-section, including symbols that
missed the last base bar. Why cycle-wide rather than per symbol: downstream
expects one cross-section per bar close, and a quiet symbol must not hold its
bar back until its own next bar shows up. Only closed base bars are ever used,
and a higher bar is emitted only after its period has ended.

:func:`resample` over a history emits exactly the periods the online
:class:`Resampler` emits when fed the same bars cycle by cycle in ts order:
the periods whose last base cycle is at or before the newest cycle seen
(``through_ms``). Volume is summed in time order in both, so they agree to
the last bit, which the parity test checks.

Input is expected to be quality-checked (:mod:`decile.market.quality`): one
finite, aligned bar per (symbol, ts), each symbol in ts order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from decile.market.bars import Bars, union_symbols
from decile.market.timeframes import BASE, HIGHER, Timeframe, align, parse

__all__ = ["Resampler", "resample", "resample_all"]

F64 = npt.NDArray[np.float64]


def _check_pair(base: Timeframe, target: Timeframe) -> None:
    if not base.divides(target):
        raise ValueError(f"cannot build {target} bars from {base}: not a longer whole multiple")


def resample(
    bars: Bars,
    target: str | Timeframe,
    *,
    base: str | Timeframe = BASE,
    through_ms: int | None = None,
) -> Bars:
    """``target`` bars of a whole history of ``base`` bars, sorted ``(ts, symbol)``.

    Only closed periods are returned: those whose last base cycle
    ``P + target - base`` is at or before ``through_ms`` (default: the newest
    bar in ``bars``; pass a later cycle time when the last cycles were empty,
    as :meth:`Resampler.update` with ``ts=`` would).
    Vectorised: one sort, ``reduceat`` for high/low, and a loop over the
    position inside a period (at most ``target / base`` steps, 48 for 4h from
    5m) that sums volume in time order.
    """
    tgt, bse = parse(target), parse(base)
    _check_pair(bse, tgt)
    n = len(bars)
    if n == 0:
        return Bars.empty(bars.symbols)
    order = np.lexsort((bars.ts, bars.code))  # symbol, then time
    code, ts = bars.code[order], bars.ts[order]
    period = align(ts, tgt)
    new = np.r_[True, (code[1:] != code[:-1]) | (period[1:] != period[:-1])]
    starts = np.flatnonzero(new)
    stops = np.r_[starts[1:], n]
    last_cycle = int(ts.max()) if through_ms is None else int(through_ms)
    seg_period = period[starts]
    closed = seg_period + (tgt.ms - bse.ms) <= last_cycle

    o, h = bars.open[order], bars.high[order]
    lo, c, v = bars.low[order], bars.close[order], bars.volume[order]
    high = np.maximum.reduceat(h, starts)
    low = np.minimum.reduceat(lo, starts)
    volume = _ordered_sums(v, starts, stops - starts)

    keep = np.flatnonzero(closed)
    out_code, out_ts = code[starts][keep], seg_period[keep]
    final = np.lexsort((out_code, out_ts))  # event-time order
    pick = keep[final]
    return Bars(
        bars.symbols,
        out_code[final],
        out_ts[final],
        o[starts][pick],
        high[pick],
        low[pick],
        c[stops - 1][pick],
        volume[pick],
    )


def _ordered_sums(v: F64, starts: npt.NDArray[np.intp], lens: npt.NDArray[np.intp]) -> F64:
    """Segment sums added strictly left to right, like the online running sum.

    ``np.add.reduceat`` may sum pairwise, which rounds differently from
    ``acc += v`` bar after bar; the loop is over positions, not rows.
    """
    acc = v[starts].copy()
    for k in range(1, int(lens.max(initial=0))):
        m = np.flatnonzero(lens > k)
        acc[m] += v[starts[m] + k]
    return acc


def resample_all(
    bars: Bars,
    targets: Iterable[str | Timeframe] = HIGHER,
    *,
    base: str | Timeframe = BASE,
    through_ms: int | None = None,
) -> dict[Timeframe, Bars]:
    """:func:`resample` for several targets at once."""
    return {parse(t): resample(bars, t, base=base, through_ms=through_ms) for t in targets}


@dataclass(slots=True)
class _Period:
    """The forming bar of every symbol for one target timeframe."""

    tf: Timeframe
    start: int | None = None
    floor: int = int(np.iinfo(np.int64).min)  # periods starting before this were emitted already
    has: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    o: F64 = field(default_factory=lambda: np.zeros(0))
    h: F64 = field(default_factory=lambda: np.zeros(0))
    lo: F64 = field(default_factory=lambda: np.zeros(0))
    c: F64 = field(default_factory=lambda: np.zeros(0))
    v: F64 = field(default_factory=lambda: np.zeros(0))

    def grow(self, lut: npt.NDArray[np.intp], size: int) -> None:
        """Re-lay the arrays over a larger universe; ``lut`` maps old positions to new."""
        for name in ("has", "o", "h", "lo", "c", "v"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[lut] = old
            setattr(self, name, new)

    def fold(self, idx: npt.NDArray[np.int32] | slice, cycle: Bars) -> None:
        """Merge one bar per symbol in; ``idx`` is a slice when the cycle covers the universe."""
        first = ~self.has[idx]
        if first.all():  # the period's first cycle: plain copies
            self.o[idx], self.h[idx], self.lo[idx] = cycle.open, cycle.high, cycle.low
            self.v[idx] = cycle.volume
        elif not first.any():
            self.h[idx] = np.maximum(self.h[idx], cycle.high)
            self.lo[idx] = np.minimum(self.lo[idx], cycle.low)
            self.v[idx] = self.v[idx] + cycle.volume
        else:
            at = np.flatnonzero(first)
            self.o[idx[at] if isinstance(idx, np.ndarray) else at] = cycle.open[at]
            self.h[idx] = np.where(first, cycle.high, np.maximum(self.h[idx], cycle.high))
            self.lo[idx] = np.where(first, cycle.low, np.minimum(self.lo[idx], cycle.low))
            self.v[idx] = np.where(first, cycle.volume, self.v[idx] + cycle.volume)
        self.c[idx] = cycle.close
        self.has[idx] = True

    def emit(self, universe: tuple[str, ...]) -> Bars:
        assert self.start is not None
        sel = np.flatnonzero(self.has)
        out = Bars(
            universe,
            sel.astype(np.int32),
            np.full(len(sel), self.start, np.int64),
            self.o[sel],
            self.h[sel],
            self.lo[sel],
            self.c[sel],
            self.v[sel],
        )
        self.floor = self.start + self.tf.ms
        self.start = None
        self.has[:] = False
        return out


class Resampler:
    """Online higher-timeframe bars from base cross-sections, one array step per cycle.

    Feed each base cycle (all bars share one ``ts``) in ts order with
    :meth:`update`; it returns the ``(timeframe, cross-section)`` pairs that
    closed, shortest timeframe first. State is one array per field over the
    symbol universe, so a 1,200-symbol cycle costs a few vector operations per
    target, not a loop over symbols. Bars of a period already emitted (a
    cycle arriving after a later one) are dropped and counted in
    :attr:`late_bars`, never merged into a published bar.

    On restart, warm it by replaying the base bars since the start of the
    longest open period (4h) and discarding what it emits.
    """

    def __init__(
        self, base: str | Timeframe = BASE, targets: Iterable[str | Timeframe] = HIGHER
    ) -> None:
        self.base = parse(base)
        self.targets = tuple(sorted({parse(t) for t in targets}, key=lambda t: t.ms))
        for t in self.targets:
            _check_pair(self.base, t)
        self.universe: tuple[str, ...] = ()
        self._periods = {t: _Period(t) for t in self.targets}
        self.late_bars: dict[Timeframe, int] = dict.fromkeys(self.targets, 0)

    def update(self, cycle: Bars, ts: int | None = None) -> list[tuple[Timeframe, Bars]]:
        """Fold one base cross-section in; return the higher bars that closed with it.

        ``ts`` is only needed for an empty cycle (every bar rejected), so time
        still advances and periods still close on schedule.
        """
        if len(cycle):
            t = int(cycle.ts[0])
            if int(cycle.ts.min()) != t or int(cycle.ts.max()) != t:
                raise ValueError("a cycle holds bars of one ts only")
        elif ts is None:
            return []
        else:
            t = int(ts)
        idx = self._codes(cycle)
        out: list[tuple[Timeframe, Bars]] = []
        for tf, per in self._periods.items():
            p = align(t, tf)
            if per.start is not None and p > per.start:  # last base cycle of the period missed
                out.append((tf, per.emit(self.universe)))
            if p < per.floor:
                self.late_bars[tf] += len(cycle)
                continue
            if len(cycle):
                per.start = p
                per.fold(idx, cycle)
            if t + self.base.ms == p + tf.ms and per.start is not None:
                out.append((tf, per.emit(self.universe)))
            elif t + self.base.ms >= p + tf.ms:  # empty last cycle: nothing formed
                per.floor = max(per.floor, p + tf.ms)
        return out

    def pending(self, tf: str | Timeframe) -> Bars:
        """The bars still forming for ``tf`` (not closed: for inspection, never publish)."""
        per = self._periods[parse(tf)]
        if per.start is None:
            return Bars.empty(self.universe)
        sel = np.flatnonzero(per.has)
        return Bars(
            self.universe,
            sel.astype(np.int32),
            np.full(len(sel), per.start, np.int64),
            per.o[sel],
            per.h[sel],
            per.lo[sel],
            per.c[sel],
            per.v[sel],
        )

    def _codes(self, cycle: Bars) -> npt.NDArray[np.int32] | slice:
        """Positions of the cycle's symbols in the universe, growing it when new symbols appear."""
        if cycle.symbols is not self.universe and cycle.symbols != self.universe:
            universe = union_symbols(self.universe, cycle.symbols)
            if universe != self.universe:
                lut = np.searchsorted(
                    np.asarray(universe, dtype=str), np.asarray(self.universe, dtype=str)
                )
                for per in self._periods.values():
                    per.grow(lut, len(universe))
                self.universe = universe
        idx = cycle.with_symbols(self.universe).code
        if len(idx) > 1 and not np.all(idx[1:] > idx[:-1]):  # sorted cycles skip the sort
            s = np.sort(idx)
            if np.any(s[1:] == s[:-1]):
                raise ValueError("a cycle holds one bar per symbol; run the quality check first")
        # n strictly increasing codes in [0, n) are 0..n-1: slices instead of gathers
        if len(idx) == len(self.universe) and (len(idx) < 2 or np.all(idx[1:] > idx[:-1])):
            return slice(None)
        return idx
