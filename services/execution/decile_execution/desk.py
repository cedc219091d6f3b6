"""The trading desk: the paper broker, plus the decisions a kill switch cancelled.

Pure (no I/O, no clock): the service hands it decisions with the kill state
read at that moment, and bar cross-sections; it returns a :class:`Step` saying
what to publish and how the change must be made durable.

Why cancellations are remembered here and not in the broker: the broker's
events are a function of the streams alone, so a redelivered input re-emits
the same events with the same ids and publishing before saving is safe. A
kill cancellation depends on the kill state, which is not in the streams: a
redelivery after the switch went off would accept what was cancelled. So a
cancellation is saved BEFORE its ``Order`` is published, and a redelivered
cancelled decision publishes the same cancelled ``Order`` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from decile.events import BarBatch, Event, Order, RiskDecision
from decile.paper import PaperBroker, PaperConfig, order_deadline_ms
from decile.paper.broker import order_event
from decile.risk import KillState

__all__ = ["Desk", "Step", "kill_scope"]


@dataclass(frozen=True, slots=True)
class Step:
    """What one input did.

    ``events``: to publish, in order. ``changed``: the state moved and must be
    saved before the input is acked. ``write_ahead``: save BEFORE publishing (a
    kill cancellation). ``killed``: the kill scope that cancelled the decision.
    """

    events: list[Event] = field(default_factory=list)
    changed: bool = False
    write_ahead: bool = False
    killed: str | None = None


def kill_scope(decision: RiskDecision, kill: KillState) -> str | None:
    """The switch that forbids new risk for ``decision`` (``master``, ``auto``,
    ``symbol``, ``strategy``), or None when trading is allowed."""
    if kill.master:
        return "master"
    if kill.auto:
        return "auto"
    if decision.symbol in kill.symbols:
        return "symbol"
    if decision.confirm.candidate.strategy in kill.strategies:
        return "strategy"
    return None


class Desk:
    """One paper account. ``cancelled`` maps a kill-cancelled decision id to its order
    deadline (epoch ms), in cancellation order; it is forgotten, like the broker's
    decision ids, ``dedup_retention_bars`` after that deadline."""

    def __init__(self, broker: PaperBroker, cancelled: dict[str, int] | None = None) -> None:
        self.broker = broker
        self.cancelled = cancelled if cancelled is not None else {}

    @property
    def config(self) -> PaperConfig:
        return self.broker.config

    def decide(self, decision: RiskDecision, kill: KillState) -> Step:
        """Submit an approved decision, or cancel it while a kill switch covers it."""
        if decision.id in self.cancelled:  # redelivered: the same Order, once more
            return Step([self._cancelled(decision)])
        scope = kill_scope(decision, kill)
        if scope is None or not self.broker.admits(decision):
            events = self.broker.submit(decision)  # [] (and no change) for a repeat
            return Step(events, changed=bool(events))
        self.cancelled[decision.id] = order_deadline_ms(decision, self.config)
        return Step([self._cancelled(decision)], changed=True, write_ahead=True, killed=scope)

    def bars(self, batch: BarBatch) -> Step:
        """One cross-section: exits, fills and expiries. A bar time not after the last
        one processed (a redelivery) changes nothing."""
        before = self.broker.clock_ms
        events = self.broker.on_batch(batch)
        clock = self.broker.clock_ms
        if clock == before or clock is None:
            return Step(events)
        forget = clock - self.config.dedup_retention_bars * self.config.tf_ms
        while self.cancelled and next(iter(self.cancelled.values())) < forget:
            del self.cancelled[next(iter(self.cancelled))]
        return Step(events, changed=True)

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able state: the broker's snapshot and the cancellations."""
        return {"broker": self.broker.snapshot(), "cancelled": list(self.cancelled.items())}

    @classmethod
    def restore(cls, doc: dict[str, Any], config: PaperConfig) -> Desk:
        """The desk ``doc`` was taken of, run with ``config`` from now on (a changed fee
        applies from the next bar); a changed timeframe is refused, the book's bar
        times would mean nothing."""
        broker = PaperBroker.restore(doc["broker"], config)
        saved_tf = doc["broker"]["config"]["tf"]
        if saved_tf != config.tf.value:
            raise ValueError(
                f"the saved account runs on {saved_tf} bars, the settings say "
                f"{config.tf.value}: use another account (DECILE_EXECUTION__ACCOUNT)"
            )
        return cls(broker, {str(k): int(v) for k, v in doc["cancelled"]})

    def _cancelled(self, decision: RiskDecision) -> Order:
        """The ``Order`` (cancelled) of a decision a kill switch stopped."""
        return order_event(decision, "cancelled", decision.ts_event, self.cancelled[decision.id])
