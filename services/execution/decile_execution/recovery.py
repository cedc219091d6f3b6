"""Start-up: the saved snapshot, then the inputs after it, in the order they were taken.

The dead process may have taken (and acked) inputs after its last snapshot. The
events it published say in which order: each carries the positions of both
inputs when it was emitted (``Decile-Inputs``, see :mod:`decile_execution.state`).
:func:`replay_order` puts the inputs after the snapshot back in that order, then
the inputs nobody took yet in time order (a bar, then the decisions made on it).
Inputs without events (a quiet bar) need no record: only their place before a
decision with events matters, and that decision's positions give it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors as js_errors

from decile import codec
from decile.bus import Bus
from decile.events import BarBatch, RiskDecision
from decile.market.timeframes import to_ms
from decile.obs import get_logger
from decile.paper import PaperConfig
from decile.paper.broker import submission_bar_ms
from decile.rebuild import ack_floor, read_after, resume_after
from decile.risk import KillState
from decile_execution import metrics as m
from decile_execution.desk import Step
from decile_execution.state import H_INPUTS, OPEN, Account, Input, Publish, StateStore

log = get_logger(__name__)

SCAN_LIMIT = 10_000  # EXEC messages read back at most (a snapshot is under a second old)


@dataclass(frozen=True, slots=True)
class Source:
    """An input of the desk: its name in the positions, stream key, filter subject
    (full), durable consumer and event type."""

    name: str
    stream: str
    subject: str
    durable: str
    event: type[Any]


async def recover(
    bus: Bus,
    store: StateStore,
    config: PaperConfig,
    publish: Publish,
    sources: Sequence[Source],
    kill: KillState,
    record: Callable[[Step, Account], None],
) -> Account:
    """The account as the dead process left it, then caught up with the streams: the
    snapshot, the inputs it took after it (again, publishing only what it had not),
    the inputs nobody took yet (under ``kill``); saved, and each durable recreated
    to continue after the last input taken."""
    saved = await store.load()
    floors = None
    if saved is None or saved.positions() is None:  # a snapshot saved at each ack
        floors = {s.name: await ack_floor(bus, s.stream, s.durable) for s in sources}
    tail = await exec_tail(bus, saved.exec_seq if saved else 0)
    account = Account(store, config, publish, saved, tail.published, floors)
    found = {s.name: await read_after(bus, stream=s.stream, subject=s.subject,
                                      after=account.positions[s.name], event=s.event)
             for s in sources}
    replayed = skipped = 0
    for inp, taken_before in replay_order(tail.taken, found["risk"], found["md"], config):
        step = await account.handle(inp, OPEN if taken_before else kill)
        skipped += account.skipped  # ``record`` moves it to the metric
        record(step, account)
        m.REPLAYED.labels(inp.source).inc()
        replayed += 1
        if replayed % 1000 == 0:
            log.info("replaying inputs", done=replayed,
                     of=len(found["risk"]) + len(found["md"]))
    account.published.clear()  # all taken again: what they emitted is known
    await account.flush()
    for s in sources:
        await resume_after(bus, stream=s.stream, subject=s.subject, durable=s.durable,
                           seq=account.positions[s.name])
    log.info("account recovered", restored=saved is not None, replayed=replayed,
             taken_before=len(tail.taken), already_published=skipped)
    return account


@dataclass(frozen=True, slots=True)
class Taken:
    """An input a process took and published events for: ``by`` it came from, and the
    positions of both sources once it was taken."""

    by: str
    risk: int
    md: int

    @classmethod
    def parse(cls, header: str) -> Taken | None:
        try:
            fields = dict(part.split("=", 1) for part in header.split(";"))
            return cls(fields["by"], int(fields["risk"]), int(fields["md"]))
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Tail:
    """EXEC after a sequence: event id -> sequence, and the inputs behind them, in order."""

    published: dict[str, int]
    taken: list[Taken]

    def add(self, event_id: str | None, seq: int, headers: Mapping[str, str]) -> None:
        """One EXEC message, in stream order."""
        if event_id:
            self.published[event_id] = seq
        taken = Taken.parse(headers.get(H_INPUTS, ""))
        if taken is not None and (not self.taken or self.taken[-1] != taken):
            self.taken.append(taken)  # one record per input, not per event


async def exec_tail(bus: Bus, seq: int, limit: int = SCAN_LIMIT) -> Tail:
    """The messages on EXEC after ``seq``: what a process published after its snapshot.

    Publishing them again is harmless inside the stream's duplicate window (the
    server drops them) and skipping them makes it harmless after it too. When the
    stream cannot be read (e.g. no permission to get messages) the window is all
    that protects, and a warning says so.
    """
    name = bus.subjects.stream("EXEC")
    tail = Tail({}, [])
    try:
        last = (await bus.js.stream_info(name)).state.last_seq
        for n in range(max(seq + 1, last - limit + 1), last + 1):
            try:
                msg = await bus.js.get_msg(name, n)
            except js_errors.NotFoundError:
                continue  # deleted or aged out
            headers = msg.headers or {}
            tail.add(headers.get(codec.H_MSG_ID), n, headers)
    except (nats.errors.Error, TimeoutError) as err:
        log.warning("cannot read the stream tail; relying on its duplicate window",
                    stream=name, error=repr(err))
    return tail


def replay_order(
    taken: Sequence[Taken],
    decisions: Sequence[tuple[int, RiskDecision]],
    batches: Sequence[tuple[int, BarBatch]],
    config: PaperConfig,
) -> Iterator[tuple[Input, bool]]:
    """The inputs after a snapshot, each with True when a process took it before (its
    outcome is on EXEC), in the order to take them again."""
    risk = deque(Input("risk", s, e) for s, e in decisions)
    md = deque(Input("md", s, e) for s, e in batches)

    def upto(queue: deque[Input], seq: int) -> Iterator[tuple[Input, bool]]:
        while queue and queue[0].seq <= seq:
            yield queue.popleft(), True

    for t in taken:  # everything the other source had given first, then this one
        if t.by == "risk":
            yield from upto(md, t.md)
            yield from upto(risk, t.risk)
        else:
            yield from upto(risk, t.risk)
            yield from upto(md, t.md)
    while risk or md:  # never taken: a bar, then the decisions made on it
        if risk and (not md or submission_bar_ms(_decision(risk[0]), config) < _bar_ms(md[0])):
            yield risk.popleft(), False
        else:
            yield md.popleft(), False


def _decision(inp: Input) -> RiskDecision:
    assert isinstance(inp.event, RiskDecision)
    return inp.event


def _bar_ms(inp: Input) -> int:
    assert isinstance(inp.event, BarBatch)
    return to_ms(inp.event.bar_time)
