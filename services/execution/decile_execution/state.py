"""The desk's durable copy: one PostgreSQL row per account, and the order of writes.

Every input goes through :meth:`Account.handle`, one at a time (decisions and
bars share the desk): apply it to the desk, then publish its events and upsert
the snapshot, and only then does the consumer ack the message. Which comes
first depends on the input (see :mod:`decile_execution.desk`):

* broker events: publish, then save. A crash in between leaves the message
  unacked; the restarted desk (older snapshot) re-emits the same events with
  the same ids, and the EXEC stream keeps one copy of each.
* a kill cancellation: save, then publish. A redelivery finds the decision
  cancelled and publishes the same ``Order`` again.

When publishing or saving fails, the in-memory desk is put back to the last
saved snapshot before the error goes up (the consumer retries the message), so
memory never runs ahead of what a restart would restore; events that reached
the stream in the failed attempt are not sent again by the retry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.js import api as js_api

from decile.events import Event
from decile.paper import PaperBroker, PaperConfig
from decile_execution.desk import Desk, Step

UPSERT = """
INSERT INTO execution_state (account, snapshot, exec_seq, updated_at)
VALUES ($1, $2::jsonb, $3, now())
ON CONFLICT (account) DO UPDATE
SET snapshot = EXCLUDED.snapshot, exec_seq = EXCLUDED.exec_seq, updated_at = EXCLUDED.updated_at
"""

Publish = Callable[[list[Event]], Awaitable[list[js_api.PubAck]]]


@dataclass(frozen=True, slots=True)
class Saved:
    """A stored snapshot (JSON text) and the EXEC sequence published before it."""

    text: str
    exec_seq: int


class StateStore:
    """Table ``execution_state`` (migration 0005): load at start, upsert per change."""

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
    """The desk, its store and the publisher, kept in step (see the module doc).

    ``published``: event id -> EXEC sequence of what is already on the stream
    but not in the saved state (found at start, or sent by an attempt that
    failed); those are not published again, and the saved sequence moves past
    them once their input is saved.
    """

    def __init__(
        self,
        store: StateStore,
        config: PaperConfig,
        publish: Publish,
        saved: Saved | None,
        published: Mapping[str, int] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.publish = publish
        self.saved = saved
        self.desk = _desk(saved, config)
        self.exec_seq = saved.exec_seq if saved else 0
        self.published = dict(published or {})
        self.skipped = 0  # events found already published, not sent again
        self._sent: dict[str, int] = {}  # published by the input being handled
        self._lock = asyncio.Lock()

    async def handle(self, apply: Callable[[Desk], Step]) -> Step:
        """Apply one input and make it durable; the caller acks when this returns."""
        async with self._lock:
            self._sent = {}
            try:
                step = apply(self.desk)
                if step.write_ahead:
                    await self._save()
                    await self._publish(step.events)
                else:
                    await self._publish(step.events)
                    if step.changed:
                        await self._save()
            except BaseException:
                self.desk = _desk(self.saved, self.config)  # back to what is durable
                self.published.update(self._sent)  # the retry re-emits these: on the stream
                raise
            return step

    async def _publish(self, events: list[Event]) -> None:
        fresh = []
        for e in events:
            if (seq := self.published.get(e.id)) is None:
                fresh.append(e)
            else:
                self.exec_seq = max(self.exec_seq, seq)
                self.skipped += 1
        if fresh:
            acks = await self.publish(fresh)
            self._sent.update((e.id, a.seq) for e, a in zip(fresh, acks, strict=True))
            self.exec_seq = max(self.exec_seq, *(a.seq for a in acks))

    async def _save(self) -> None:
        saved = Saved(json.dumps(self.desk.snapshot(), allow_nan=False), self.exec_seq)
        await self.store.save(saved)
        self.saved = saved


def _desk(saved: Saved | None, config: PaperConfig) -> Desk:
    if saved is None:
        return Desk(PaperBroker(config))
    doc: dict[str, Any] = json.loads(saved.text)
    return Desk.restore(doc, config)
