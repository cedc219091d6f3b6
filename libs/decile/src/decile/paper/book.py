"""The paper book: open orders, open positions, cash, and what it has already seen.

Positions are margined, not paid for: cash moves only by fees (when a leg
fills) and by the gross result of a closed trade, the same way for longs and
shorts. So ``equity = cash + unrealised`` and, whenever the book is flat,
``equity == starting_equity + sum(pnl of closed trades)`` exactly as the
trade events report it.

Everything here turns into plain JSON-able dicts (``to_dict``) and back
(``from_dict``): the execution service persists a snapshot and restores it on
start, and a restored book must continue exactly as the uninterrupted one
would (floats survive a JSON round trip bit for bit; times are epoch ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from decile.events.risk import OrderIntent, RiskDecision
from decile.paper.costs import Liquidity
from decile.paper.rules import Excursion

__all__ = ["Book", "Ledger", "Position", "Ticket"]

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Ticket:
    """An accepted order: its decision, and the window of bars it may fill in.

    ``submitted_ms`` is the open time of the bar the decision was made on (the
    last bar it could have seen); only later bars may fill it. A bar opened at
    ``t`` may fill it while ``t + tf <= deadline_ms``.
    """

    decision: RiskDecision
    order_id: str
    submitted_ms: int
    deadline_ms: int

    @property
    def intent(self) -> OrderIntent:
        assert self.decision.intent is not None  # only approved decisions become tickets
        return self.decision.intent

    @property
    def long(self) -> bool:
        return self.intent.side == "long"

    def to_dict(self, decision_json: str | None = None) -> dict[str, Any]:
        """``decision_json``: the decision already encoded (the book keeps it per id)."""
        return {
            "decision": decision_json or self.decision.model_dump_json(),
            "order_id": self.order_id,
            "submitted_ms": self.submitted_ms,
            "deadline_ms": self.deadline_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ticket:
        raw = d["decision"]  # JSON text; a dict in snapshots written before it was text
        decision = (RiskDecision.model_validate_json(raw) if isinstance(raw, str)
                    else RiskDecision.model_validate(raw))
        return cls(
            decision=decision,
            order_id=str(d["order_id"]),
            submitted_ms=int(d["submitted_ms"]),
            deadline_ms=int(d["deadline_ms"]),
        )


@dataclass(frozen=True, slots=True)
class Position:
    """A filled entry still open: fill price (costs in it), entry fee, and the path so far.

    ``excursion`` is the worst adverse and best favourable per-unit move from
    ``entry_price`` over the bars held; ``mark`` the last close seen.
    """

    ticket: Ticket
    entry_price: float
    entry_fee: float
    entry_liquidity: Liquidity
    entry_ms: int
    excursion: Excursion
    mark: float

    def moved(self, excursion: Excursion, mark: float) -> Position:
        """This position after one more bar: excursions widened, marked at ``mark``."""
        widest = Excursion(
            max(self.excursion.adverse, excursion.adverse),
            max(self.excursion.favourable, excursion.favourable),
        )
        return replace(self, excursion=widest, mark=mark)

    @property
    def unrealised(self) -> float:
        """Gross mark-to-market result (no exit costs), quote currency."""
        sign = 1.0 if self.ticket.long else -1.0
        return sign * (self.mark - self.entry_price) * self.ticket.intent.quantity

    def to_dict(self, decision_json: str | None = None) -> dict[str, Any]:
        return {
            "ticket": self.ticket.to_dict(decision_json),
            "entry_price": self.entry_price,
            "entry_fee": self.entry_fee,
            "entry_liquidity": self.entry_liquidity,
            "entry_ms": self.entry_ms,
            "adverse": self.excursion.adverse,
            "favourable": self.excursion.favourable,
            "mark": self.mark,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Position:
        liquidity: Liquidity = "maker" if d["entry_liquidity"] == "maker" else "taker"
        return cls(
            ticket=Ticket.from_dict(d["ticket"]),
            entry_price=float(d["entry_price"]),
            entry_fee=float(d["entry_fee"]),
            entry_liquidity=liquidity,
            entry_ms=int(d["entry_ms"]),
            excursion=Excursion(float(d["adverse"]), float(d["favourable"])),
            mark=float(d["mark"]),
        )


@dataclass(frozen=True, slots=True)
class Ledger:
    """A read-only account statement, quote currency.

    ``cash`` = start + realised results - every fee paid (including entry fees
    of open positions); ``equity`` = cash + ``unrealised_pnl`` (gross, marked at
    the last close); ``realised_pnl`` = sum of closed trades' pnl (after fees
    and slippage); ``fees`` = all fees paid so far.
    """

    starting_equity: float
    cash: float
    equity: float
    realised_pnl: float
    unrealised_pnl: float
    fees: float
    open_orders: int
    open_positions: int
    closed_trades: int


@dataclass(slots=True)
class Book:
    """Mutable broker state; the broker is its only writer.

    ``seen`` maps every decision id acted on to its order's deadline (epoch ms),
    in submission order, so pruning from the front is cheap; ``clock_ms`` is
    the open time of the last bar processed (None before the first).
    """

    cash: float
    realised_pnl: float = 0.0
    fees: float = 0.0
    closed_trades: int = 0
    clock_ms: int | None = None
    orders: dict[str, Ticket] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    # decision id -> its JSON, for the open book: a snapshot encodes each decision once
    encoded: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def ledger(self, starting_equity: float) -> Ledger:
        unrealised = math.fsum(p.unrealised for p in self.positions.values())
        return Ledger(
            starting_equity=starting_equity,
            cash=self.cash,
            equity=self.cash + unrealised,
            realised_pnl=self.realised_pnl,
            unrealised_pnl=unrealised,
            fees=self.fees,
            open_orders=len(self.orders),
            open_positions=len(self.positions),
            closed_trades=self.closed_trades,
        )

    def prune_seen(self, before_ms: int) -> None:
        """Forget decision ids whose deadline is before ``before_ms``, oldest first.

        Stops at the first id that is still needed (deadline too recent, or its
        order or position still open): submission order is nearly deadline
        order, so this is amortised O(1) per decision and deterministic.
        """
        while self.seen:
            oldest, deadline = next(iter(self.seen.items()))
            if deadline >= before_ms or oldest in self.orders or oldest in self.positions:
                return
            del self.seen[oldest]

    def to_dict(self) -> dict[str, Any]:
        held = [t.decision for t in self.orders.values()]
        held += [p.ticket.decision for p in self.positions.values()]
        known = self.encoded
        self.encoded = {d.id: known.get(d.id) or d.model_dump_json() for d in held}
        return {
            "cash": self.cash,
            "realised_pnl": self.realised_pnl,
            "fees": self.fees,
            "closed_trades": self.closed_trades,
            "clock_ms": self.clock_ms,
            "orders": [t.to_dict(self.encoded[k]) for k, t in self.orders.items()],
            "positions": [p.to_dict(self.encoded[k]) for k, p in self.positions.items()],
            "seen": [[k, v] for k, v in self.seen.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Book:
        orders = [Ticket.from_dict(t) for t in d["orders"]]
        positions = [Position.from_dict(p) for p in d["positions"]]
        clock = d["clock_ms"]
        return cls(
            cash=float(d["cash"]),
            realised_pnl=float(d["realised_pnl"]),
            fees=float(d["fees"]),
            closed_trades=int(d["closed_trades"]),
            clock_ms=None if clock is None else int(clock),
            orders={t.decision.id: t for t in orders},
            positions={p.ticket.decision.id: p for p in positions},
            seen={str(k): int(v) for k, v in d["seen"]},
        )
