"""The outcomes monitor: do closed trades win as often as the model said they would?

Over the last ``window`` (500) closed trades, the realised win rate (a trade
wins when its realised R after costs is > 0) is compared with the expected
one, the mean ``p_win`` the entry model gave those same trades. When they differ
by more than ``max_gap`` (5 points) on a full window, the model is no longer
describing the market it trades and a retrain is requested
(``WIN_RATE_DEVIATION``), then not again until ``window`` more trades closed:
one request per fresh window of evidence, not one per trade.

Pure: trades in, a Rejection out (the service publishes it as RetrainRequested).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from decile.events import Rejection, TradeClosed
from decile.reasons import ReasonCode

__all__ = ["WinRateMonitor"]


@dataclass
class WinRateMonitor:
    window: int = 500
    max_gap: float = 0.05
    wins: deque[bool] = field(default_factory=deque)
    expected: deque[float] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)
    since_request: int = 0
    requested: bool = False

    def __post_init__(self) -> None:
        if self.window < 1 or not 0.0 < self.max_gap < 1.0:
            raise ValueError("window must be >= 1 and max_gap in (0, 1)")
        self.wins = deque(maxlen=self.window)
        self.expected = deque(maxlen=self.window)

    @property
    def trades(self) -> int:
        return len(self.wins)

    @property
    def win_rate(self) -> float | None:
        return sum(self.wins) / len(self.wins) if self.wins else None

    @property
    def expected_rate(self) -> float | None:
        return sum(self.expected) / len(self.expected) if self.expected else None

    def add(self, trade: TradeClosed) -> Rejection | None:
        """Count one closed trade (a repeat is ignored); the deviation when one is due."""
        if trade.decision_id in self.seen:
            return None
        self.seen.add(trade.decision_id)
        self.wins.append(trade.realised_r > 0.0)
        self.expected.append(trade.p_win)
        self.since_request += 1
        if self.trades < self.window or (self.requested and self.since_request < self.window):
            return None
        rate = sum(self.wins) / self.trades
        expected = sum(self.expected) / self.trades
        if abs(rate - expected) <= self.max_gap:
            return None
        self.requested, self.since_request = True, 0
        return Rejection(
            gate="outcomes",
            code=ReasonCode.WIN_RATE_DEVIATION,
            values={"win_rate": round(rate, 4), "expected": round(expected, 4),
                    "trades": self.trades, "max_gap": self.max_gap},
            detail=f"the last {self.trades} closed trades won {rate:.1%}, "
            f"the model expected {expected:.1%}",
        )
