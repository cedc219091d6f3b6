"""The paper broker: risk decisions and bars in, orders, fills and closed trades out.

Pure and deterministic: no I/O, no clock (event times are bar times or the
decision's own time), every event id derived from its decision with
``Event.follow``. Feeding the same decisions and bars in the same order gives
the same events, ids included, whether in one run or across a
``snapshot()`` / ``restore()`` in the middle.

Time model (epoch ms, bar OPEN times, ``config.tf`` bars):

* A decision is *submitted for* the last bar it could have seen: the last
  feed bar closed by ``max(confirm.decided_at, candidate bar close)``. Only
  later bars may fill a resting order, so no decision trades on prices it
  already knew. A market order fills as it arrives (``market_entry``
  ``"arrival"``): at the submission bar's close, the price when it was decided,
  slipped; its first bar of exposure is the one after the submission bar, and
  bars up to the submission bar arriving after it do nothing to it.
* An order may fill in a bar only if the bar closes by its deadline,
  ``min(intent.expires_at, submitted + (1 + order_expiry_bars) * tf)``. It
  expires (``Order`` status ``expired``) on its last such bar unfilled.
* A position times out at the close of its ``timeout_bars``-th bar, the entry
  bar counting as the first. A missing bar (symbol absent from the
  cross-section) fills and exits nothing; the timeout waits for the next bar.
* A cross-section whose bar time is not after the last one processed is a
  redelivery or arrives too late: it is ignored, so bars are idempotent too.

Money: see :mod:`decile.paper.book` (margined positions, cash moves by fees
and realised results). A trade's ``pnl`` is after both fees, slippage being
inside the fill prices; ``realised_r = pnl / intent.risk_amount`` (the money
risk sizing put on the trade: with ``risk_amount = quantity * |entry - stop|``,
1R is the planned stop distance). ``mae_r`` (<= 0) and ``mfe_r`` (>= 0) are the
worst and best per-unit moves from the entry fill over the bars held, times
``quantity / risk_amount``: the same R, gross of costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from decile.events.base import Event
from decile.events.execution import Fill, Order, TradeClosed
from decile.events.market import BarBatch
from decile.events.risk import OrderIntent, RiskDecision
from decile.market.timeframes import align, to_ms
from decile.paper import costs
from decile.paper.book import SNAPSHOT_VERSION, Book, Ledger, Position, Ticket
from decile.paper.config import PaperConfig
from decile.paper.rules import Bar, Excursion, ExitReason, entry_fill, excursion, exit_fill
from decile.paper.rules import Fill as Execution

__all__ = ["PRODUCER", "PaperBroker", "order_deadline_ms", "order_event", "span_ms",
           "submission_bar_ms"]

PRODUCER: Final = "execution"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
OrderStatus = Literal["accepted", "cancelled", "expired"]
Leg = Literal["entry", "exit"]
_UNIT_MS: Final = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _time(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def span_ms(tf: str) -> int:
    """Milliseconds in a timeframe name as events carry it (``"5m"``, ``"4h"``, ``"1w"``)."""
    return int(tf[:-1]) * _UNIT_MS[tf[-1]]


def submission_bar_ms(decision: RiskDecision, config: PaperConfig) -> int:
    """Open time of the last ``config.tf`` bar closed when the decision was made.

    The decision knew bars up to the candidate's close and up to
    ``decided_at``, whichever is later; a ``decided_at`` a few milliseconds
    after a bar close (a live pipeline's latency) still means that bar.
    """
    cand = decision.confirm.candidate
    known = max(
        to_ms(decision.confirm.decided_at), to_ms(cand.bar_time) + span_ms(cand.tf)
    )
    return align(known, config.tf) - config.tf_ms


def order_deadline_ms(decision: RiskDecision, config: PaperConfig) -> int:
    """The last bar close (epoch ms) an approved decision's order may fill by.

    ``min(intent.expires_at, submission bar + (1 + order_expiry_bars) * tf)``.
    """
    assert decision.intent is not None, "only an approved decision has an order"
    submitted = submission_bar_ms(decision, config)
    return min(
        to_ms(decision.intent.expires_at),
        submitted + (1 + config.order_expiry_bars) * config.tf_ms,
    )


def order_event(decision: RiskDecision, status: OrderStatus, at: datetime, deadline_ms: int
                ) -> Order:
    """The ``Order`` of an approved decision in ``status`` at ``at``; its id derives from the
    decision and the status, so publishing it twice stores it once."""
    intent = decision.intent
    assert intent is not None, "only an approved decision has an order"
    return decision.follow(
        Order,
        status,
        ts_event=at,
        producer=PRODUCER,
        decision_id=decision.id,
        symbol=intent.symbol,
        side=intent.side,
        entry_type=intent.entry_type,
        quantity=intent.quantity,
        price=intent.entry_price,
        stop_price=intent.stop_price,
        take_profit=intent.take_profit,
        status=status,
        expires_at=_time(deadline_ms),
    )


def _sane(intent: OrderIntent) -> bool:
    """Stop on the losing side of the entry, take-profit on the winning side."""
    if intent.side == "long":
        return intent.stop_price < intent.entry_price < intent.take_profit
    return intent.take_profit < intent.entry_price < intent.stop_price


class PaperBroker:
    """Simulated fills against bar cross-sections, with a ledger; implements ``Broker``.

    Loops over its own open orders and positions (few: risk caps them), never
    over the cross-section; symbol rows are found through a name index built
    once per universe.
    """

    def __init__(self, config: PaperConfig | None = None, *, _book: Book | None = None) -> None:
        self.config = config or PaperConfig()
        self._book = _book or Book(cash=self.config.starting_equity)
        self._universe: Sequence[str] = ()
        self._rows: dict[str, int] = {}

    # -- reading ------------------------------------------------------------------
    def ledger(self) -> Ledger:
        """Cash, equity, realised and unrealised P&L, fees and counts, right now."""
        return self._book.ledger(self.config.starting_equity)

    @property
    def open_orders(self) -> tuple[Ticket, ...]:
        return tuple(self._book.orders.values())

    @property
    def open_positions(self) -> tuple[Position, ...]:
        return tuple(self._book.positions.values())

    @property
    def clock_ms(self) -> int | None:
        """Open time of the last bar processed."""
        return self._book.clock_ms

    # -- decisions ----------------------------------------------------------------
    def submit(self, decision: RiskDecision) -> list[Event]:
        """An ``Order`` (accepted) for a new approved decision; [] for anything else.

        Idempotent on ``decision.id``. Refused with no event: rejected
        decisions, repeats, and approved decisions whose deadline is older
        than ``dedup_retention_bars`` (a replay of history the book may have
        forgotten; it could not fill anyway). An intent with the stop or the
        take-profit on the wrong side of the entry yields ``Order`` cancelled.
        """
        book, cfg = self._book, self.config
        if not self.admits(decision):
            return []
        assert decision.intent is not None  # admits() checked it
        intent = decision.intent
        submitted = submission_bar_ms(decision, cfg)
        deadline = order_deadline_ms(decision, cfg)
        book.seen[decision.id] = deadline
        pending = Ticket(decision, "", submitted, deadline)  # the order id is the event's
        if not _sane(intent):
            return [self._order(pending, "cancelled", decision.ts_event)]
        order = self._order(pending, "accepted", decision.ts_event)
        ticket = replace(pending, order_id=order.id)
        if self._fills_on_arrival(ticket):
            return [order, *self._arrive(ticket)]
        book.orders[decision.id] = ticket
        return [order]

    def admits(self, decision: RiskDecision) -> bool:
        """Whether :meth:`submit` would act on ``decision``: approved, never seen, not stale.

        The execution service asks before it cancels a decision under a kill
        switch, so a redelivered decision the book already traded is left alone.
        """
        if decision.outcome != "approved" or decision.intent is None:
            return False
        if decision.id in self._book.seen:
            return False
        clock = self._book.clock_ms
        if clock is None:
            return True
        return order_deadline_ms(decision, self.config) >= self._forget_before(clock)

    # -- bars ---------------------------------------------------------------------
    def on_batch(self, batch: BarBatch) -> list[Event]:
        """:meth:`on_bars` for a ``BarBatch`` of this broker's timeframe."""
        if batch.tf != self.config.tf.value:
            raise ValueError(f"bars are {batch.tf}, this broker runs on {self.config.tf.value}")
        return self.on_bars(batch.bar_time, batch.symbols, batch.values)

    def on_bars(
        self, bar_time: datetime, symbols: Sequence[str], ohlcv: npt.NDArray[np.float64]
    ) -> list[Event]:
        """Exits of open positions, then fills and expiries of open orders, for one bar time.

        ``ohlcv`` has one row per symbol: open, high, low, close (volume and
        further columns are ignored). Rows with a non-finite price count as
        missing. Returns [] for a bar time not after the last one processed.
        """
        book, cfg = self._book, self.config
        now = to_ms(bar_time)
        if book.clock_ms is not None and now <= book.clock_ms:
            return []
        values = np.asarray(ohlcv, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != len(symbols) or values.shape[1] < 4:
            raise ValueError(f"ohlcv must be ({len(symbols)}, >=4), got {values.shape}")
        self._index(symbols)
        events: list[Event] = []
        for key, pos in list(book.positions.items()):
            if now < pos.entry_ms:  # a bar before a fill on arrival, delivered after it
                continue
            bar = self._bar(pos.ticket.intent.symbol, now, values)
            if bar is not None:
                self._hold(key, pos, bar, from_open=True, events=events)
        for key, ticket in list(book.orders.items()):
            if now <= ticket.submitted_ms:
                continue
            if now + cfg.tf_ms > ticket.deadline_ms:
                self._expire(key, ticket, now, events)
                continue
            bar = self._bar(ticket.intent.symbol, now, values)
            fill = None if bar is None else self._entry(ticket, bar)
            if bar is not None and fill is not None:
                del book.orders[key]
                pos = self._open(ticket, fill, now, events)
                market = ticket.intent.entry_type == "market"
                self._hold(key, pos, bar, from_open=market, events=events)
            elif now + 2 * cfg.tf_ms > ticket.deadline_ms:
                self._expire(key, ticket, now, events)
        book.clock_ms = now
        book.prune_seen(self._forget_before(now))
        return events

    # -- snapshot -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data (``json.dumps`` it as is)."""
        head = {"version": SNAPSHOT_VERSION, "config": self.config.to_dict()}
        return head | self._book.to_dict()

    @classmethod
    def restore(cls, snapshot: dict[str, Any], config: PaperConfig | None = None) -> PaperBroker:
        """A broker that continues exactly where ``snapshot`` was taken.

        Uses the snapshot's own config unless ``config`` is given (a deliberate
        change, e.g. new fees, applies to the open book from the next bar on).
        """
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown paper snapshot version {snapshot.get('version')!r}")
        cfg = config or PaperConfig(**snapshot["config"])
        return cls(cfg, _book=Book.from_dict(snapshot))

    # -- internals ----------------------------------------------------------------
    def _forget_before(self, clock_ms: int) -> int:
        return clock_ms - self.config.dedup_retention_bars * self.config.tf_ms

    def _index(self, symbols: Sequence[str]) -> None:
        """Name -> row, rebuilt only when the universe changes (a feed reuses its tuple)."""
        if symbols is not self._universe and tuple(symbols) != tuple(self._universe):
            self._rows = {s: i for i, s in enumerate(symbols)}
        self._universe = symbols

    def _bar(self, symbol: str, now: int, values: npt.NDArray[np.float64]) -> Bar | None:
        row = self._rows.get(symbol)
        if row is None:
            return None
        o, h, lo, c = (float(x) for x in values[row, :4])
        if not np.isfinite((o, h, lo, c)).all():
            return None
        return Bar(now, o, h, lo, c)

    def _entry(self, ticket: Ticket, bar: Bar) -> Execution | None:
        intent = ticket.intent
        return entry_fill(intent.entry_type, ticket.long, intent.entry_price, bar, self.config)

    def _fills_on_arrival(self, ticket: Ticket) -> bool:
        """A market order, and no bar after its submission bar processed yet."""
        clock = self._book.clock_ms
        return (
            self.config.market_entry == "arrival"
            and ticket.intent.entry_type == "market"
            and (clock is None or clock <= ticket.submitted_ms)
        )

    def _arrive(self, ticket: Ticket) -> list[Event]:
        """Fill a market order now: the intent's price is the submission bar's close (the
        last price the decision knew); its slippage range is the candidate's ATR, since
        the bar it fills in has not traded yet. Exposure starts with the next bar."""
        intent = ticket.intent
        atr = ticket.decision.confirm.candidate.atr
        price = costs.taker_price(intent.entry_price, ticket.long, atr, self.config)
        events: list[Event] = []
        entry_ms = ticket.submitted_ms + self.config.tf_ms
        at = ticket.decision.ts_event
        self._book.positions[ticket.decision.id] = self._open(
            ticket, Execution(price, "taker"), entry_ms, events, at=at, bar_ms=ticket.submitted_ms
        )
        return events

    def _open(
        self,
        ticket: Ticket,
        fill: Execution,
        entry_ms: int,
        events: list[Event],
        *,
        at: datetime | None = None,
        bar_ms: int | None = None,
    ) -> Position:
        """Book an entry fill; exposure from the bar opened at ``entry_ms``. The Fill is
        stamped with the bar it filled in and that bar's close, unless ``bar_ms`` (the bar
        that priced it) and ``at`` (when it filled) say otherwise."""
        book, intent = self._book, ticket.intent
        fee = costs.fee(fill.price, intent.quantity, fill.liquidity, self.config)
        book.cash -= fee
        book.fees += fee
        bar_ms = entry_ms if bar_ms is None else bar_ms
        events.append(self._fill(ticket, "entry", fill, fee, bar_ms, at=at))
        return Position(
            ticket=ticket,
            entry_price=fill.price,
            entry_fee=fee,
            entry_liquidity=fill.liquidity,
            entry_ms=entry_ms,
            excursion=Excursion(0.0, 0.0),  # the fill bar's moves are added by _hold
            mark=fill.price,
        )

    def _hold(
        self, key: str, pos: Position, bar: Bar, *, from_open: bool, events: list[Event]
    ) -> None:
        """One bar of a position: exit it, or widen its excursions and mark it."""
        cfg, ticket = self.config, pos.ticket
        intent = ticket.intent
        due = bar.time_ms >= pos.entry_ms + (cfg.timeout_bars - 1) * cfg.tf_ms
        out = exit_fill(
            ticket.long,
            intent.stop_price,
            intent.take_profit,
            bar,
            from_open=from_open,
            due=due,
            config=cfg,
        )
        if out is None:
            moved = excursion(ticket.long, pos.entry_price, bar, favourable=from_open)
            self._book.positions[key] = pos.moved(moved, bar.close)
            return
        reason, fill = out
        moved = excursion(
            ticket.long, pos.entry_price, bar, favourable=from_open, exit=(reason, fill.price)
        )
        self._close(key, pos.moved(moved, fill.price), bar, reason, fill, events)

    def _close(
        self,
        key: str,
        pos: Position,
        bar: Bar,
        reason: ExitReason,
        fill: Execution,
        events: list[Event],
    ) -> None:
        book, cfg, ticket = self._book, self.config, pos.ticket
        intent, cand = ticket.intent, ticket.decision.confirm.candidate
        fee = costs.fee(fill.price, intent.quantity, fill.liquidity, cfg)
        sign = 1.0 if ticket.long else -1.0
        gross = sign * (fill.price - pos.entry_price) * intent.quantity
        pnl = gross - pos.entry_fee - fee
        book.cash += gross - fee
        book.fees += fee
        book.realised_pnl += pnl
        book.closed_trades += 1
        book.positions.pop(key, None)
        events.append(self._fill(ticket, "exit", fill, fee, bar.time_ms))
        r_per_unit = intent.quantity / intent.risk_amount
        events.append(
            ticket.decision.follow(
                TradeClosed,
                "closed",
                ts_event=_time(bar.time_ms + cfg.tf_ms),
                producer=PRODUCER,
                decision_id=ticket.decision.id,
                symbol=intent.symbol,
                side=intent.side,
                quantity=intent.quantity,
                entry_price=pos.entry_price,
                exit_price=fill.price,
                entry_time=_time(pos.entry_ms),
                exit_time=_time(bar.time_ms),
                exit_reason=reason,
                pnl=pnl,
                fees=pos.entry_fee + fee,
                realised_r=pnl / intent.risk_amount,
                mae_r=-pos.excursion.adverse * r_per_unit,
                mfe_r=pos.excursion.favourable * r_per_unit,
                hold_bars=(bar.time_ms - pos.entry_ms) // cfg.tf_ms + 1,
                p_win=cand.p_win,
                strategy=cand.strategy,
                model_versions=dict(cand.model_versions),
            )
        )

    def _expire(self, key: str, ticket: Ticket, now: int, events: list[Event]) -> None:
        del self._book.orders[key]
        events.append(self._order(ticket, "expired", _time(now + self.config.tf_ms)))

    def _order(self, ticket: Ticket, status: OrderStatus, at: datetime) -> Order:
        return order_event(ticket.decision, status, at, ticket.deadline_ms)

    def _fill(
        self,
        ticket: Ticket,
        leg: Leg,
        fill: Execution,
        fee: float,
        bar_ms: int,
        *,
        at: datetime | None = None,
    ) -> Fill:
        intent = ticket.intent
        return ticket.decision.follow(
            Fill,
            leg,
            ts_event=at or _time(bar_ms + self.config.tf_ms),
            producer=PRODUCER,
            order_id=ticket.order_id,
            decision_id=ticket.decision.id,
            symbol=intent.symbol,
            side=intent.side,
            leg=leg,
            quantity=intent.quantity,
            price=fill.price,
            fee=fee,
            liquidity=fill.liquidity,
            bar_time=_time(bar_ms),
        )
