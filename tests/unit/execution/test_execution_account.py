"""The order of writes around one input, the checkpoint behind it, and recovery.

Fakes stand in for the streams and the table: they record what was published
(with its headers) and saved, and can be told to fail once, which is the crash
point under test. A "process" is an :class:`Account`; a crash is dropping it.
The start-up of the next one is what :func:`decile_execution.recovery.recover`
does, minus the NATS reads: the snapshot, the EXEC tail, then the inputs after
the snapshot's positions in :func:`replay_order`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from nats.js import api as js_api

from decile.events import BarBatch, Event, Fill, Order, RiskDecision
from decile.paper import PaperConfig
from decile.risk import KillState
from decile_execution import state as state_module
from decile_execution.metrics import SAVE_ERRORS
from decile_execution.recovery import Tail, Taken, replay_order
from decile_execution.state import H_INPUTS, Account, Input, Saved
from tests.unit.execution.execution_support import FIRST_FILL_BAR, bars, decision

OPEN = KillState()
MASTER = KillState(master=True, reasons=MappingProxyType({"master": "test"}))
SUBMISSION_BAR = FIRST_FILL_BAR - 1  # the bar decision() is decided on


class Boom(RuntimeError):
    pass


class World:
    """The input streams, the EXEC stream and the state row, with one planned failure."""

    def __init__(self) -> None:
        self.risk: list[tuple[int, RiskDecision]] = []
        self.md: list[tuple[int, BarBatch]] = []
        self.stream: list[tuple[Event, dict[str, str]]] = []
        self.row: Saved | None = None
        self.calls: list[str] = []
        self.fail: str | None = None

    def decision(self, d: RiskDecision) -> Input:
        """``d`` appended to RISK: the input a consumer hands over."""
        self.risk.append((self._seq(), d))
        return Input("risk", self.risk[-1][0], d)

    def bar(self, k: int, **kw: Any) -> Input:
        self.md.append((self._seq(), bars(k, **kw)))
        return Input("md", self.md[-1][0], self.md[-1][1])

    def _seq(self) -> int:  # one sequence across both: harmless, each is increasing
        return 1 + len(self.risk) + len(self.md)

    async def publish(self, events: list[Event], headers: Mapping[str, str]
                      ) -> list[js_api.PubAck]:
        self.calls.append("publish")
        if self.fail == "publish":
            self.fail = None
            raise Boom("publish")
        acks = []
        for e in events:
            stored = [s.id for s, _ in self.stream]
            if e.id not in stored:  # the stream's duplicate window
                self.stream.append((e, dict(headers)))
                stored.append(e.id)
            acks.append(js_api.PubAck(stream="EXEC", seq=1 + stored.index(e.id)))
        return acks

    async def save(self, saved: Saved) -> None:
        self.calls.append("save")
        if self.fail == "save":
            self.fail = None
            raise ConnectionResetError("save")  # what a lost database connection raises
        self.row = saved

    @property
    def events(self) -> list[Event]:
        return [e for e, _ in self.stream]

    def account(self, published: dict[str, int] | None = None) -> Account:
        """A process starting now, from the row as it is (no replay)."""
        return Account(self, PaperConfig(), self.publish, self.row, published)  # type: ignore[arg-type]

    async def restart(self, kill: KillState = OPEN, taken: bool = True) -> Account:
        """A process starting now: the row, then the inputs after it, replayed."""
        seq = self.row.exec_seq if self.row else 0
        tail = Tail({}, [])
        for n, (e, headers) in enumerate(self.stream[seq:]):
            tail.add(e.id, seq + 1 + n, headers)
        acc = self.account(tail.published)
        after = acc.positions
        order = replay_order(tail.taken if taken else [],
                             [x for x in self.risk if x[0] > after["risk"]],
                             [x for x in self.md if x[0] > after["md"]], acc.config)
        for inp, before in order:
            await acc.handle(inp, OPEN if before else kill)
        return acc


def state(acc: Account) -> dict[str, Any]:
    doc = acc.desk.snapshot()
    return json.loads(json.dumps(doc))


async def test_an_input_is_published_and_acked_with_no_database_write() -> None:
    world = World()
    acc = world.account()
    step = await acc.handle(world.decision(decision()), OPEN)
    assert [type(e) for e in step.events] == [Order]
    assert world.calls == ["publish"]
    assert world.stream[0][1][H_INPUTS] == "risk=1;md=0;by=risk"
    await acc.flush()  # the writer, later
    assert world.row is not None
    assert world.row.positions() == {"risk": 1, "md": 0}
    assert world.row.exec_seq == 1


async def test_the_writer_saves_a_burst_of_inputs_in_one_write() -> None:
    world = World()
    acc = world.account()
    writer = asyncio.create_task(acc.run_writer(0.05))
    await acc.handle(world.decision(decision()), OPEN)
    for k in range(3):
        await acc.handle(world.bar(k), OPEN)
    await asyncio.sleep(0.2)
    writer.cancel()
    assert world.calls.count("save") == 1
    assert world.row is not None
    assert world.row.positions() == {"risk": 1, "md": 4}


async def test_a_failed_save_is_retried_by_the_writer_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state_module, "RETRY_S", 0.01)
    world = World()
    acc = world.account()
    world.fail = "save"  # the database is away for one write
    errors = SAVE_ERRORS._value.get()
    writer = asyncio.create_task(acc.run_writer(0.0))
    await acc.handle(world.decision(decision()), OPEN)
    for _ in range(100):
        if world.row is not None:
            break
        await asyncio.sleep(0.01)
    writer.cancel()
    assert world.calls == ["publish", "save", "save"]
    assert SAVE_ERRORS._value.get() == errors + 1
    assert world.row is not None
    assert world.row.positions() == {"risk": 1, "md": 0}


async def test_a_kill_cancellation_is_saved_with_the_positions_before_it_then_published() -> None:
    world = World()
    await world.account().handle(world.decision(decision()), MASTER)
    assert world.calls == ["save", "publish"]
    assert world.row is not None
    assert world.row.positions() == {"risk": 0, "md": 0}  # a replay takes it again
    assert json.loads(world.row.text)["cancelled"]


async def test_a_failed_publish_rebuilds_the_desk_and_the_retry_emits_the_same_events() -> None:
    world, d = World(), decision()
    acc = world.account()
    await acc.handle(world.decision(d), OPEN)
    await acc.handle(world.bar(0), OPEN)
    fill_bar = world.bar(FIRST_FILL_BAR)
    world.fail = "publish"
    with pytest.raises(Boom):
        await acc.handle(fill_bar, OPEN)
    assert len(acc.desk.broker.open_orders) == 1  # the fill is undone in memory ...
    assert acc.positions == {"risk": 1, "md": 2}  # ... and the bar is not taken
    step = await acc.handle(fill_bar, OPEN)  # the redelivery
    assert [type(e) for e in step.events] == [Fill]
    assert [type(e) for e in world.events] == [Order, Fill]


async def test_a_repeated_input_is_not_taken_twice() -> None:
    world = World()
    acc = world.account()
    inp = world.decision(decision())
    await acc.handle(inp, OPEN)
    again = await acc.handle(inp, OPEN)
    assert (again.events, again.changed) == ([], False)
    assert world.calls == ["publish"]


async def test_a_crash_after_inputs_never_saved_replays_them_and_publishes_nothing_new() -> None:
    world, d = World(), decision()
    first = world.account()
    await first.handle(world.decision(d), OPEN)
    await first.flush()
    for k in range(FIRST_FILL_BAR + 3):  # the fill, then quiet bars: never saved
        await first.handle(world.bar(k), OPEN)
    published = len(world.stream)
    second = await world.restart()
    assert state(second) == state(first)
    assert len(world.stream) == published
    assert world.calls.count("publish") == 2  # Order, Fill: nothing sent again
    assert second.positions == first.positions


async def test_the_replay_takes_a_late_decision_after_the_bar_it_came_after() -> None:
    """Bar T+1 was taken before the market decision of bar T (late delivery: it fills
    at T+2's open, not on arrival). Time order alone would fill it on arrival; the
    positions on its Order put it back after T+1."""
    world = World()
    first = world.account()
    await first.flush()
    for k in range(SUBMISSION_BAR + 2):  # through T+1
        await first.handle(world.bar(k), OPEN)
    step = await first.handle(world.decision(decision(entry_type="market")), OPEN)
    assert [type(e) for e in step.events] == [Order]  # late: no fill on arrival
    await first.handle(world.bar(SUBMISSION_BAR + 2), OPEN)  # its fill, at the open
    assert [type(e) for e in world.events] == [Order, Fill]
    second = await world.restart()
    assert state(second) == state(first)
    assert len(world.stream) == 2
    blind = await world.restart(taken=False)
    assert state(blind) != state(first)  # what the records prevent


async def test_inputs_never_taken_are_applied_in_time_order_under_the_kill_state_now() -> None:
    world = World()
    first = world.account()
    await first.handle(world.bar(0), OPEN)
    await first.flush()
    world.bar(1)  # published while the process was down ...
    world.decision(decision())  # ... and a decision nobody took
    second = await world.restart(kill=MASTER)
    assert second.positions == {"risk": 3, "md": 2}
    assert [(type(e), getattr(e, "status", "")) for e in world.events] == [(Order, "cancelled")]


async def test_a_crash_after_a_kill_cancellation_was_saved_republishes_it() -> None:
    world, d = World(), decision()
    world.fail = "publish"  # saved, then the process dies before publishing
    with pytest.raises(Boom):
        await world.account().handle(world.decision(d), MASTER)
    assert world.stream == []
    await world.restart(kill=OPEN)  # the switch is off now: still the cancelled Order
    assert [(type(e), getattr(e, "status", "")) for e in world.events] == [(Order, "cancelled")]


async def test_a_market_order_and_its_fill_on_arrival_go_out_in_one_publish() -> None:
    world = World()
    step = await world.account().handle(world.decision(decision(entry_type="market")), OPEN)
    assert [type(e) for e in step.events] == [Order, Fill]
    assert world.calls == ["publish"]
    assert {h[H_INPUTS] for _, h in world.stream} == {"risk=1;md=0;by=risk"}


@pytest.mark.parametrize("header", ["", "risk=1;md=2", "risk=x;md=2;by=md", "nonsense"])
def test_an_unreadable_inputs_header_is_no_record(header: str) -> None:
    assert Taken.parse(header) is None


def test_an_inputs_header_reads_back() -> None:
    assert Taken.parse("risk=7;md=12;by=md") == Taken("md", 7, 12)
