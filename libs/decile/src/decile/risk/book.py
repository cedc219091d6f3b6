"""What the gates may read about the book: a frozen, read-only facade.

The risk service keeps the live book (fills, closes, marks, kill switches) and
hands the gates one :class:`BookState` per decision. Nothing here mutates, reads
a clock or does I/O, so a decision can be replayed from its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from decile.events.signals import Side

Returns = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Position:
    """One open position as risk sees it.

    ``notional`` is the absolute quantity x price in the account currency (the side
    says the direction); ``risk_amount`` is what the position loses if its stop is
    hit (0 once the stop is at break-even); ``cluster`` groups symbols that move
    together (the symbol itself when it belongs to none).
    """

    symbol: str
    strategy: str
    side: Side
    notional: float
    cluster: str
    risk_amount: float = 0.0

    def __post_init__(self) -> None:
        if self.notional < 0 or self.risk_amount < 0:
            raise ValueError("notional and risk_amount are magnitudes (>= 0); side is the sign")


@dataclass(frozen=True, slots=True)
class KillState:
    """The kill switches that are ON.

    ``auto`` holds the reason tokens of automatic halts (``auto.<reason>`` keys, set
    by services, e.g. a latched daily-loss halt): each halts all new risk like the
    master switch. ``reasons`` maps a switch key (``master``, ``symbol.BTC-USDT``,
    ``strategy.breakout``, ``auto.drawdown``) to the text given when it was set.
    """

    master: bool = False
    symbols: frozenset[str] = frozenset()
    strategies: frozenset[str] = frozenset()
    auto: frozenset[str] = frozenset()
    reasons: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def unknown(cls) -> KillState:
        """Fail closed: what to assume before the switches could be read."""
        return cls(master=True, reasons=MappingProxyType({"master": "kill state unknown"}))

    @property
    def halted(self) -> bool:
        """True when no new risk may be taken anywhere."""
        return self.master or bool(self.auto)


@dataclass(frozen=True, slots=True, eq=False)
class BookState:
    """The book at decision time.

    Equities are mark-to-market in the account currency: ``start_of_day_equity`` at
    00:00 UTC, ``peak_equity`` the high-water mark. ``recent_r`` holds the realised R
    of closed trades, oldest first. ``returns`` maps a symbol to its rolling bar
    returns, newest last, aligned on the same bar times across symbols.
    ``last_bar_time`` maps a symbol to the OPEN time of its newest bar.
    ``model_age_s`` is the production entry model's age (None when unknown).
    ``clusters`` maps a symbol to its cluster.
    """

    equity: float
    start_of_day_equity: float
    peak_equity: float
    positions: tuple[Position, ...] = ()
    recent_r: tuple[float, ...] = ()
    returns: Mapping[str, Returns] = field(default_factory=dict)
    last_bar_time: Mapping[str, datetime] = field(default_factory=dict)
    model_age_s: float | None = None
    kill: KillState = field(default_factory=KillState)
    clusters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.start_of_day_equity > 0 and self.peak_equity > 0):
            raise ValueError("start-of-day and peak equity must be > 0: no limit is defined")

    def cluster_of(self, symbol: str) -> str:
        return self.clusters.get(symbol, symbol)

    def symbol_notional(self, symbol: str) -> float:
        """Gross notional on ``symbol``: long and short both count as exposure."""
        return sum(p.notional for p in self.positions if p.symbol == symbol)

    def cluster_notional(self, cluster: str) -> float:
        return sum(p.notional for p in self.positions if p.cluster == cluster)
