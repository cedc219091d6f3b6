"""The append-only audit trail of every risk decision (table ``risk_decisions``).

A decision is published, its confirm acked, and the row written by a
background writer in batches: no database round trip on the path an order
travels or between two decisions. The RISK stream is the write-ahead log of
the table:

* at start, the decisions on the stream newer than the newest recorded one
  (published by a process that died before its writer caught up) are
  recorded first (:func:`recover`);
* a confirm redelivered after a crash between publishing and acking decides
  under the same id; the stream answers "duplicate" with the sequence of its
  copy, and that copy is what is recorded and what the book sees, even if the
  book moved in between (the service adopts it, see ``decile_risk.app``).

Recording is idempotent on the decision id (derived from the confirm decision's
id). A full queue (the database away) makes the service wait before deciding
more, so at most ``max_pending`` decisions are ever only on the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from decile.bus import Bus
from decile.events import RiskDecision
from decile.obs import get_logger
from decile.rebuild import newest_first

log = get_logger(__name__)

INSERT = """
INSERT INTO risk_decisions (decision_id, confirm_id, candidate_id, trace_id, symbol, strategy,
    outcome, gate, code, "values", checked, snapshot, intent, event, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12::jsonb, $13::jsonb,
    $14::jsonb, $15)
ON CONFLICT (decision_id) DO NOTHING
"""
BATCH = 500
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # then every 5 s while the database stays away


def _row(decision: RiskDecision) -> tuple[Any, ...]:
    rej = decision.rejection
    intent = decision.intent.model_dump_json() if decision.intent is not None else None
    candidate = decision.confirm.candidate
    return (
        decision.id,
        decision.confirm.id,
        candidate.id,
        decision.trace_id,
        decision.symbol,
        candidate.strategy,
        decision.outcome,
        rej.gate if rej else None,
        rej.code.value if rej else None,
        json.dumps(rej.values if rej else {}),
        list(decision.checked),
        json.dumps(decision.snapshot),
        intent,
        decision.model_dump_json(),
        decision.ts_event,
    )


class AuditLog:
    def __init__(self, pool: asyncpg.Pool, max_pending: int = 10_000) -> None:
        self.pool = pool
        self.queue: asyncio.Queue[RiskDecision] = asyncio.Queue(maxsize=max_pending)
        self.written = 0

    async def record(self, decisions: Iterable[RiskDecision]) -> None:
        """Insert ``decisions`` in one transaction (rows already there are left as they are)."""
        rows = [_row(d) for d in decisions]
        if not rows:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(INSERT, rows)

    async def submit(self, decision: RiskDecision) -> None:
        """Queue ``decision`` for the writer; waits while the queue is full."""
        await self.queue.put(decision)

    async def writer(self, healthy: Callable[[bool], None]) -> None:
        """Write queued decisions in batches, in order, retrying until the database takes
        them; ``healthy(False)`` while it does not."""
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            for attempt in range(1_000_000):
                try:
                    await self.record(batch)
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                    healthy(False)
                    log.warning("audit write failed, retrying", error=repr(err),
                                decisions=len(batch), attempt=attempt + 1)
                    await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
            healthy(True)
            self.written += len(batch)
            for _ in batch:
                self.queue.task_done()

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued decision is written (at stop)."""
        await asyncio.wait_for(self.queue.join(), timeout_s)

    async def known(self, decision_id: str) -> bool:
        async with self.pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM risk_decisions WHERE decision_id = $1", decision_id)
        return found is not None

    async def approved(self, limit: int = 10_000) -> list[RiskDecision]:
        """The most recent approved decisions (oldest first): the book's stops after a restart."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event::text AS e FROM risk_decisions WHERE outcome = 'approved' "
                "ORDER BY decided_at DESC LIMIT $1",
                limit,
            )
        return [RiskDecision.model_validate_json(r["e"]) for r in reversed(rows)]


async def recover(bus: Bus, audit: AuditLog, limit: int = 10_000) -> RiskDecision | None:
    """Record the decisions on the RISK stream newer than the newest recorded one; returns
    the newest decision on the stream (None: none yet)."""
    newest: RiskDecision | None = None
    missing: list[RiskDecision] = []
    async for decision in newest_first(bus, "RISK", RiskDecision, limit):
        newest = newest or decision
        if await audit.known(decision.id):
            break
        missing.append(decision)
    if missing:
        await audit.record(reversed(missing))
        log.warning("recorded decisions published before a restart", decisions=len(missing),
                    newest=missing[0].id)
    return newest
