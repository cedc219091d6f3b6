"""What the execution service needs from any broker, paper or live.

Two calls, both returning the events they caused rather than publishing them
(the domain records facts; the handler publishes): a risk decision in, and one
bar cross-section in. A live exchange adapter implements the same two calls,
so the execution service does not change when paper trading ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from decile.events.base import Event
from decile.events.risk import RiskDecision

__all__ = ["Broker"]


class Broker(Protocol):
    """Turns approved decisions into orders, and bars into fills and closed trades.

    Both calls must be idempotent: a redelivered decision or bar cross-section
    returns no events and changes nothing, and every event's id derives from
    the decision, so a replay produces the same ids.
    """

    def submit(self, decision: RiskDecision) -> list[Event]:
        """Accept an approved decision as an order (``Order`` events); ignore the rest."""
        ...

    def on_bars(
        self, bar_time: datetime, symbols: Sequence[str], ohlcv: npt.NDArray[np.float64]
    ) -> list[Event]:
        """Process one cross-section (bar open time, names, ``(n, 5)`` OHLCV rows)."""
        ...
