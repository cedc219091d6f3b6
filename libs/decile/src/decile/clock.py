"""Which time a decision service reads: the wall clock (live) or event time (replay).

Live, a decision is judged at the wall clock: a confirm decision that waited in
the bus for ten minutes is ten minutes old. A replay of history runs far faster
than the bars it carries, so there ``now`` is the newest event time the
service has seen; judged on that clock a replay makes the decisions live
trading would have made, and makes the same ones however fast or interrupted
it runs (what the kill -9 tests of the decision services rely on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

ClockMode = Literal["wall", "event"]

__all__ = ["ClockMode", "EventClock", "wall_now"]


def wall_now() -> datetime:
    return datetime.now(UTC)


class EventClock:
    """The newest event time seen (never goes back), read as ``now`` in ``event`` mode."""

    def __init__(self, mode: ClockMode) -> None:
        self.mode = mode
        self.seen: datetime | None = None

    def advance(self, t: datetime) -> None:
        if t.tzinfo is None:
            raise ValueError("event times carry a zone")
        if self.seen is None or t > self.seen:
            self.seen = t

    def now(self, event_time: datetime | None = None) -> datetime:
        """Wall mode: the later of the wall clock and ``event_time``. Event mode: the
        newest event time seen, ``event_time`` included; the wall clock before any."""
        if event_time is not None:
            self.advance(event_time)
        if self.mode == "wall":
            now = wall_now()
            return max(now, event_time) if event_time is not None else now
        return self.seen if self.seen is not None else wall_now()
