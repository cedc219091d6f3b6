"""The desk's durable copy, and why no database write sits on the decision path.

The desk is a function of its inputs in the order it took them: approved
decisions (RISK) and bar cross-sections (MD), both kept by JetStream. So the
streams are its write-ahead log and the PostgreSQL row is a checkpoint:

* an input is applied, its events are published (each carrying the stream
  positions of the inputs taken so far, header ``Decile-Inputs``), and the
  consumer acks it: nothing waits on the database;
* a writer saves the latest snapshot, with those positions, a moment later
  (coalesced: one write covers every input since the previous one);
* at start the snapshot is restored and the inputs after its positions are
  replayed from the streams (:mod:`decile_execution.recovery`) in the order the
  dead process took them, read back from its EXEC events: the desk re-emits the
  same events, which are not published again. Inputs it never took are then
  applied in time order.
* a kill cancellation depends on the kill state, which is in no stream: it is
  saved BEFORE its ``Order`` is published (with the positions before it, so a
  replay takes the decision again, finds it cancelled and republishes the Order).

When publishing fails, the desk is rebuilt from the last snapshot taken plus the
inputs applied since (kept in memory), the failing one left out, and the error
goes up: the consumer retries the input.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from nats.js import api as js_api

from decile.events import BarBatch, Event, RiskDecision
from decile.obs import get_logger
from decile.paper import PaperBroker, PaperConfig
from decile.risk import KillState
from decile_execution import metrics as m
from decile_execution.desk import Desk, Step

log = get_logger(__name__)

UPSERT = """
INSERT INTO execution_state (account, snapshot, exec_seq, updated_at)
VALUES ($1, $2::jsonb, $3, now())
ON CONFLICT (account) DO UPDATE
SET snapshot = EXCLUDED.snapshot, exec_seq = EXCLUDED.exec_seq, updated_at = EXCLUDED.updated_at
"""

H_INPUTS = "Decile-Inputs"  # on EXEC events: "risk=<seq>;md=<seq>;by=<source>"
SOURCES = ("risk", "md")
OPEN = KillState()  # a replayed decision the dead process took was not cancelled (see above)
RETRY_S = 1.0  # after a failed save
# what a lost database connection raises: the writer retries, a stop gives up
SAVE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

Source = Literal["risk", "md"]
Publish = Callable[[list[Event], Mapping[str, str]], Awaitable[list[js_api.PubAck]]]


@dataclass(frozen=True, slots=True)
class Input:
    """One message the desk takes: its source, stream sequence and event."""

    source: Source
    seq: int
    event: RiskDecision | BarBatch


@dataclass(frozen=True, slots=True)
class Saved:
    """A snapshot (JSON text: the desk and the input positions it reflects), the EXEC
    sequence published before it, and its order among this process's snapshots."""

    text: str
    exec_seq: int
    version: int = 0

    def positions(self) -> dict[str, int] | None:
        """Stream sequence of the last input of each source it reflects (None in a
        snapshot from before positions were kept: it reflects the consumers' ack floors)."""
        inputs = json.loads(self.text).get("inputs")
        return None if inputs is None else {s: int(inputs[s]) for s in SOURCES}


def inputs_header(positions: Mapping[str, int], by: str) -> str:
    return f"risk={positions['risk']};md={positions['md']};by={by}"


class StateStore:
    """Table ``execution_state`` (migration 0005): load at start, upsert a checkpoint."""

    def __init__(self, pool: asyncpg.Pool, account: str) -> None:
        self.pool = pool
        self.account = account

    async def load(self) -> Saved | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT snapshot::text AS s, exec_seq FROM execution_state WHERE account = $1",
                self.account,
            )
        return None if row is None else Saved(row["s"], int(row["exec_seq"]))

    async def save(self, saved: Saved) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(UPSERT, self.account, saved.text, saved.exec_seq)


class Account:
    """The desk, its checkpoints and the publisher, kept in step (see the module doc).

    ``positions``: the last input taken from each source (stream sequences).
    ``published``: event id -> EXEC sequence of what is already on the stream but
    not in the saved snapshot (found at start, or sent by an attempt that failed):
    those are not published again.
    """

    def __init__(
        self,
        store: StateStore,
        config: PaperConfig,
        publish: Publish,
        saved: Saved | None,
        published: Mapping[str, int] | None = None,
        positions: Mapping[str, int] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.publish = publish
        self.saved = saved
        self.exec_seq = saved.exec_seq if saved else 0
        self.desk = _desk(saved, config)
        start = (saved.positions() if saved else None) or positions or {}
        self.positions = {s: int(start.get(s, 0)) for s in SOURCES}
        self._origin = dict(self.positions)
        self.published = dict(published or {})
        self.skipped = 0  # events found already published, not sent again
        # the last snapshot taken (saved or not) and the inputs taken since: what the
        # desk is rebuilt from when an input fails half-way
        self.base = saved
        self.journal: list[Input] = []
        self.dirty = asyncio.Event()  # inputs taken since the last snapshot
        self._versions = 0
        self._sent: dict[str, int] = {}  # published by the input being handled
        self._lock = asyncio.Lock()  # one input (or one snapshot) at a time
        self._save_lock = asyncio.Lock()

    async def handle(self, inp: Input, kill: KillState) -> Step:
        """Take one input; the caller acks it when this returns."""
        async with self._lock:
            if inp.seq <= self.positions[inp.source]:  # taken already (replayed at start)
                return Step()
            self._sent = {}
            try:
                step = self._apply(inp, kill)
                if step.write_ahead:  # positions before it: a replay takes it again
                    saved = self._snapshot()
                    await self._save(saved)  # the new base only once it is stored
                    self.base, self.journal = saved, []
                await self._publish(step.events, inp)
            except BaseException:
                self._rebuild()  # back to the last snapshot and the inputs after it
                self.published.update(self._sent)  # the retry re-emits these: on the stream
                raise
            self.positions[inp.source] = inp.seq
            self.journal.append(inp)
            self.dirty.set()
            return step

    async def run_writer(self, delay_s: float) -> None:
        """Save a snapshot ``delay_s`` after inputs were taken, for as long as the service
        runs; a failed save is retried (the streams still hold every input since)."""
        while True:
            await self.dirty.wait()
            await asyncio.sleep(delay_s)  # let a burst of inputs share one write
            try:
                await self.flush()
            except SAVE_ERRORS as err:
                m.SAVE_ERRORS.inc()
                log.warning("state save failed, will retry", error=repr(err))
                self.dirty.set()
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> None:
        """Save a snapshot of everything taken so far (at stop, and by the writer)."""
        async with self._lock:
            self.dirty.clear()
            saved = self._checkpoint()
        await self._save(saved)

    def _apply(self, inp: Input, kill: KillState) -> Step:
        if isinstance(inp.event, RiskDecision):
            return self.desk.decide(inp.event, kill)
        return self.desk.bars(inp.event)

    async def _publish(self, events: list[Event], inp: Input) -> None:
        fresh = []
        for e in events:
            if (seq := self.published.get(e.id)) is None:
                fresh.append(e)
            else:
                self.exec_seq = max(self.exec_seq, seq)
                self.skipped += 1
        if fresh:
            taken = {**self.positions, inp.source: inp.seq}
            acks = await self.publish(fresh, {H_INPUTS: inputs_header(taken, inp.source)})
            self._sent.update((e.id, a.seq) for e, a in zip(fresh, acks, strict=True))
            self.exec_seq = max(self.exec_seq, *(a.seq for a in acks))

    def _snapshot(self) -> Saved:
        doc = self.desk.snapshot()
        doc["inputs"] = dict(self.positions)
        self._versions += 1
        return Saved(json.dumps(doc, allow_nan=False), self.exec_seq, self._versions)

    def _checkpoint(self) -> Saved:
        """A snapshot of the desk as it is (between inputs), the new rebuild base."""
        self.base, self.journal = self._snapshot(), []
        return self.base

    async def _save(self, saved: Saved) -> None:
        async with self._save_lock:
            if self.saved is not None and saved.version <= self.saved.version:
                return  # a newer one (a kill cancellation's) went first
            await self.store.save(saved)
            self.saved = saved
            m.SAVES.inc()

    def _rebuild(self) -> None:
        self.desk = _desk(self.base, self.config)
        self.positions = dict((self.base.positions() if self.base else None) or self._origin)
        for inp in self.journal:
            self._apply(inp, OPEN)
            self.positions[inp.source] = inp.seq


def _desk(saved: Saved | None, config: PaperConfig) -> Desk:
    if saved is None:
        return Desk(PaperBroker(config))
    doc: dict[str, Any] = json.loads(saved.text)
    return Desk.restore(doc, config)
