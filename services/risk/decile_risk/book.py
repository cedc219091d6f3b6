"""The live book risk keeps in memory: bars, positions, closed trades, model age.

Everything here is fed by events and read through :meth:`LiveBook.state`, which
returns the frozen :class:`decile.risk.BookState` the gates see. No I/O; the
clock is passed in.

The book a decision at ``now`` sees is the book *as of* ``now``: the fills and
closed trades whose event time is before ``now`` and the bars that closed
before it. Events that arrived early (execution handled the bar that closes
at ``now`` before this decision came through confirm) wait in ``pending``. So
a decision never depends on which of two consumers happened to run first, and
a replay decides the same way however fast or often interrupted it runs.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from decile.events import BarBatch, Fill, RiskDecision, TradeClosed
from decile.events.signals import Side
from decile.risk import BookState, KillState, Position

MIN_EQUITY = 0.01  # BookState needs positive reference equities; below this, no limit applies


@dataclass
class Open:
    """One open position, keyed by the risk decision that approved it."""

    symbol: str
    side: Side
    strategy: str
    quantity: float
    entry_price: float
    stop_price: float | None  # from our own approved intent, when known

    @property
    def risk_amount(self) -> float:
        if self.stop_price is None:
            return 0.0
        return self.quantity * abs(self.entry_price - self.stop_price)


@dataclass(frozen=True)
class Approved:
    strategy: str
    stop_price: float


class LiveBook:
    def __init__(
        self,
        start_equity: float,
        *,
        returns_window: int = 200,
        clusters: Mapping[str, str] | None = None,
        r_window: int = 500,
        bar: timedelta = timedelta(minutes=5),
    ) -> None:
        self.start_equity = start_equity
        self.bar = bar
        self.clusters = dict(clusters or {})
        self.window = returns_window
        self.bar_times: deque[datetime] = deque(maxlen=returns_window + 1)
        self.closes: dict[str, dict[datetime, float]] = {}
        self.last_bar_time: dict[str, datetime] = {}
        self.last_close: dict[str, float] = {}
        self.open: dict[str, Open] = {}  # decision id -> position
        self.approved: dict[str, Approved] = {}  # decision id -> what the fill cannot say
        self.closed: dict[str, tuple[datetime, float]] = {}  # decision id -> (exit time, pnl)
        self.recent_r: deque[float] = deque(maxlen=r_window)
        self.realised = 0.0
        self.peak = start_equity
        self.model_created: datetime | None = None
        self.as_of: datetime | None = None  # exec events before this are applied
        self.pending: list[tuple[datetime, int, Fill | TradeClosed]] = []
        self._arrival = itertools.count()
        # derived figures, valid until the input they derive from changes
        self._returns: dict[tuple[str, datetime | None], np.ndarray] = {}  # cleared by bars
        self._day_pnl: tuple[datetime, int, float] | None = None  # (midnight, closed, sum)

    # ---- inputs ---------------------------------------------------------------

    def on_bars(self, batch: BarBatch) -> None:
        t = batch.bar_time
        self._returns.clear()
        if t not in self.bar_times and (not self.bar_times or t > self.bar_times[0]):
            self.bar_times.append(t)
            self.bar_times = deque(sorted(self.bar_times), maxlen=self.window + 1)
        oldest = self.bar_times[0]
        closes = batch.values[:, 3]
        for sym, close in zip(batch.symbols, closes, strict=True):
            series = self.closes.setdefault(sym, {})
            series[t] = float(close)
            if len(series) > self.window + 1:
                for old in [k for k in series if k < oldest]:
                    del series[old]
            if sym not in self.last_bar_time or t >= self.last_bar_time[sym]:
                self.last_bar_time[sym] = t
                self.last_close[sym] = float(close)

    def on_decision(self, decision: RiskDecision) -> None:
        """Remember an approved intent: its stop prices the fills' risk."""
        if decision.intent is not None:
            strategy = decision.confirm.candidate.strategy
            self.approved[decision.id] = Approved(strategy, decision.intent.stop_price)

    def on_exec(self, event: Fill | TradeClosed) -> None:
        """Queue a fill or closed trade; it counts from the first decision after its time."""
        heapq.heappush(self.pending, (event.ts_event, next(self._arrival), event))

    def advance(self, now: datetime) -> None:
        """Apply the queued exec events with an event time before ``now`` (in time order)."""
        if self.as_of is not None and now <= self.as_of:
            return
        self.as_of = now
        while self.pending and self.pending[0][0] < now:
            event = heapq.heappop(self.pending)[2]
            if isinstance(event, Fill):
                self.on_fill(event)
            else:
                self.on_closed(event)
        self.peak = max(self.peak, self.equity(now))

    def on_fill(self, fill: Fill) -> None:
        if fill.decision_id in self.closed:
            return
        pos = self.open.get(fill.decision_id)
        if fill.leg == "entry":
            known = self.approved.get(fill.decision_id)
            if pos is None:
                self.open[fill.decision_id] = Open(
                    fill.symbol, fill.side, known.strategy if known else "unknown",
                    fill.quantity, fill.price, known.stop_price if known else None,
                )
            else:
                qty = pos.quantity + fill.quantity
                paid = pos.entry_price * pos.quantity + fill.price * fill.quantity
                pos.entry_price = paid / qty
                pos.quantity = qty
        elif pos is not None:
            pos.quantity -= fill.quantity
            if pos.quantity <= 1e-12:
                del self.open[fill.decision_id]

    def on_closed(self, trade: TradeClosed) -> None:
        if trade.decision_id in self.closed:
            return
        self.open.pop(trade.decision_id, None)
        self.closed[trade.decision_id] = (trade.exit_time, trade.pnl)
        self.realised += trade.pnl
        self.recent_r.append(trade.realised_r)

    def on_model(self, created: datetime) -> None:
        self.model_created = created

    # ---- figures --------------------------------------------------------------

    def closed_before(self, now: datetime | None) -> datetime | None:
        """Open time of the newest shared bar that closed before ``now`` (None: any)."""
        if now is None:
            return self.bar_times[-1] if self.bar_times else None
        for t in reversed(self.bar_times):
            if t + self.bar < now:
                return t
        return None

    def last_bar(self, symbol: str, now: datetime | None = None) -> tuple[datetime, float] | None:
        """(open time, close) of ``symbol``'s newest bar that closed before ``now``."""
        series = self.closes.get(symbol)
        if not series:
            return None
        if now is None:
            t = self.last_bar_time.get(symbol)
            return (t, self.last_close[symbol]) if t is not None else None
        for t in reversed(self.bar_times):  # newest first; a symbol has a subset of them
            if t + self.bar < now and t in series:
                return t, series[t]
        # only bars older than the shared window left (they never entered bar_times)
        newest = max((t for t in series if t + self.bar < now), default=None)
        return None if newest is None else (newest, series[newest])

    def mark(self, symbol: str, default: float, now: datetime | None = None) -> float:
        last = self.last_bar(symbol, now)
        return default if last is None else last[1]

    def unrealised(self, now: datetime | None = None) -> float:
        total = 0.0
        for p in self.open.values():
            mark = self.mark(p.symbol, p.entry_price, now)
            sign = 1.0 if p.side == "long" else -1.0
            total += sign * p.quantity * (mark - p.entry_price)
        return total

    def equity(self, now: datetime | None = None) -> float:
        """Realised plus open P&L on the marks of bars closed before ``now`` (None: newest)."""
        return self.start_equity + self.realised + self.unrealised(now)

    def start_of_day_equity(self, now: datetime) -> float:
        """Realised equity at 00:00 UTC of ``now``'s day: open P&L counts wholly as today's."""
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        cached = self._day_pnl
        if cached is None or cached[:2] != (midnight, len(self.closed)):  # closed only grows
            before = sum(pnl for t, pnl in self.closed.values() if t < midnight)
            cached = self._day_pnl = (midnight, len(self.closed), before)
        return self.start_equity + cached[2]

    def model_age_s(self, now: datetime) -> float | None:
        if self.model_created is None:
            return None
        return max(0.0, (now - self.model_created).total_seconds())

    def returns(self, symbols: set[str], now: datetime | None = None) -> dict[str, np.ndarray]:
        """Log returns over the shared bar times closed before ``now``, NaN where missing."""
        newest = self.closed_before(now)
        times = [t for t in self.bar_times if newest is not None and t <= newest]
        out: dict[str, np.ndarray] = {}
        for sym in symbols:
            series = self.closes.get(sym)
            if not series or len(times) < 2:
                continue
            key = (sym, newest)  # the same bars until the next cross-section arrives
            if (got := self._returns.get(key)) is None:
                px = np.array([series.get(t, math.nan) for t in times], dtype=np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    got = self._returns[key] = np.diff(np.log(px))
                got.flags.writeable = False  # shared by every decision until the next bar
            out[sym] = got
        return out

    def positions(self, now: datetime | None = None) -> tuple[Position, ...]:
        out = []
        for p in self.open.values():
            mark = self.mark(p.symbol, p.entry_price, now)
            out.append(Position(p.symbol, p.strategy, p.side, abs(p.quantity * mark),
                                self.clusters.get(p.symbol, p.symbol), p.risk_amount))
        return tuple(out)

    def state(self, now: datetime, kill: KillState, symbol: str | None = None) -> BookState:
        """The book as of ``now`` (see the module doc): queued exec events applied first."""
        self.advance(now)
        positions = self.positions(now)
        wanted = {p.symbol for p in positions} | ({symbol} if symbol else set())
        equity = self.equity(now)
        last = {s: b[0] for s in wanted if (b := self.last_bar(s, now)) is not None}
        return BookState(
            equity=equity,
            start_of_day_equity=max(MIN_EQUITY, self.start_of_day_equity(now)),
            peak_equity=max(MIN_EQUITY, self.peak, equity),
            positions=positions,
            recent_r=tuple(self.recent_r),
            returns=self.returns(wanted, now),
            last_bar_time=last,
            model_age_s=self.model_age_s(now),
            kill=kill,
            clusters=self.clusters,
        )

