"""The order of writes around one input, and the rollback when one of them fails.

Fakes stand in for the stream and the table: they record what was published
and saved, and can be told to fail once, which is the crash point under test.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from nats.js import api as js_api

from decile.events import Event, Fill, Order
from decile.paper import PaperConfig
from decile.risk import KillState
from decile_execution.state import Account, Saved
from tests.unit.execution.execution_support import FIRST_FILL_BAR, bars, decision

OPEN = KillState()
MASTER = KillState(master=True, reasons=MappingProxyType({"master": "test"}))


class Boom(RuntimeError):
    pass


class World:
    """The EXEC stream and the state row, with one planned failure."""

    def __init__(self) -> None:
        self.stream: list[Event] = []
        self.row: Saved | None = None
        self.calls: list[str] = []
        self.fail: str | None = None

    async def publish(self, events: list[Event]) -> list[js_api.PubAck]:
        self.calls.append("publish")
        if self.fail == "publish":
            self.fail = None
            raise Boom("publish")
        acks = []
        for e in events:
            stored = [s.id for s in self.stream]
            if e.id not in stored:  # the stream's duplicate window
                self.stream.append(e)
                stored.append(e.id)
            acks.append(js_api.PubAck(stream="EXEC", seq=1 + stored.index(e.id)))
        return acks

    async def save(self, saved: Saved) -> None:
        self.calls.append("save")
        if self.fail == "save":
            self.fail = None
            raise Boom("save")
        self.row = saved

    def account(self, published: dict[str, int] | None = None) -> Account:
        """A process starting now, from the row as it is."""
        return Account(self, PaperConfig(), self.publish, self.row, published)  # type: ignore[arg-type]


async def test_broker_events_are_published_before_the_state_is_saved() -> None:
    world = World()
    acc = world.account()
    step = await acc.handle(lambda desk: desk.decide(decision(), OPEN))
    assert world.calls == ["publish", "save"]
    assert [type(e) for e in step.events] == [Order]
    assert world.row is not None
    assert world.row.exec_seq == 1


async def test_a_kill_cancellation_is_saved_before_it_is_published() -> None:
    world = World()
    await world.account().handle(lambda desk: desk.decide(decision(), MASTER))
    assert world.calls == ["save", "publish"]


async def test_nothing_is_saved_when_nothing_changed() -> None:
    world, d = World(), decision()
    acc = world.account()
    await acc.handle(lambda desk: desk.decide(d, OPEN))
    await acc.handle(lambda desk: desk.decide(d, OPEN))
    await acc.handle(lambda desk: desk.bars(bars(0)))
    await acc.handle(lambda desk: desk.bars(bars(0)))
    assert world.calls.count("save") == 2  # the decision and the first bar


@pytest.mark.parametrize("fail", ["publish", "save"])
async def test_a_failed_write_puts_the_desk_back_and_the_retry_emits_the_same_events(
    fail: str,
) -> None:
    world, d = World(), decision()
    acc = world.account()
    await acc.handle(lambda desk: desk.decide(d, OPEN))
    world.fail = fail
    with pytest.raises(Boom):
        await acc.handle(lambda desk: desk.bars(bars(FIRST_FILL_BAR)))
    assert len(acc.desk.broker.open_orders) == 1  # as saved: the fill is undone in memory
    step = await acc.handle(lambda desk: desk.bars(bars(FIRST_FILL_BAR)))  # the redelivery
    assert [type(e) for e in step.events] == [Fill]
    assert [type(e) for e in world.stream] == [Order, Fill]  # one copy of each
    # a fill that reached the stream before the save failed is not even sent again
    assert world.calls.count("publish") == {"publish": 3, "save": 2}[fail]


async def test_a_crash_between_publish_and_save_is_healed_by_the_next_process() -> None:
    world, d = World(), decision()
    first = world.account()
    await first.handle(lambda desk: desk.decide(d, OPEN))
    world.fail = "save"  # the process dies right after publishing the fill
    with pytest.raises(Boom):
        await first.handle(lambda desk: desk.bars(bars(FIRST_FILL_BAR)))
    on_stream = {e.id: n + 1 for n, e in enumerate(world.stream)}
    assert world.row is not None
    after = {i: n for i, n in on_stream.items() if n > world.row.exec_seq}  # found at start
    second = world.account(after)
    step = await second.handle(lambda desk: desk.bars(bars(FIRST_FILL_BAR)))
    assert [type(e) for e in step.events] == [Fill]  # re-emitted, same id ...
    assert world.calls.count("publish") == 2  # ... but not published again
    assert second.skipped == 1
    assert world.row.exec_seq == 2  # the row now accounts for the fill on the stream
    assert len(world.stream) == 2


def _ids(events: list[Any]) -> list[str]:
    return [e.id for e in events]


async def test_a_crash_after_a_kill_cancellation_was_saved_republishes_it() -> None:
    world, d = World(), decision()
    world.fail = "publish"  # saved, then the process dies before publishing
    with pytest.raises(Boom):
        await world.account().handle(lambda desk: desk.decide(d, MASTER))
    assert world.stream == []
    step = await world.account().handle(lambda desk: desk.decide(d, OPEN))  # switch now off
    assert [(type(e), e.status) for e in step.events] == [(Order, "cancelled")]  # type: ignore[attr-defined]
    assert _ids(world.stream) == _ids(step.events)


async def test_a_market_order_and_its_fill_on_arrival_go_out_in_one_publish() -> None:
    world = World()
    step = await world.account().handle(
        lambda desk: desk.decide(decision(entry_type="market"), OPEN))
    assert [type(e) for e in step.events] == [Order, Fill]
    assert world.calls == ["publish", "save"]
    assert world.row is not None
    assert world.row.exec_seq == 2
