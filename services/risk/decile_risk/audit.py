"""The append-only audit trail of every risk decision (table ``risk_decisions``).

A decision is recorded BEFORE it is published. Recording is idempotent on the
decision id (derived from the confirm decision's id): when a redelivered confirm
decision finds its row already there, the stored decision is returned and
published again unchanged, so the row and the event always agree even if the
book moved in between.
"""

from __future__ import annotations

import json

import asyncpg

from decile.events import RiskDecision

INSERT = """
INSERT INTO risk_decisions (decision_id, confirm_id, candidate_id, trace_id, symbol, strategy,
    outcome, gate, code, "values", checked, snapshot, intent, event, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12::jsonb, $13::jsonb,
    $14::jsonb, $15)
ON CONFLICT (decision_id) DO NOTHING
RETURNING decision_id
"""


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, decision: RiskDecision) -> tuple[RiskDecision, bool]:
        """Insert ``decision``; returns (what to publish, True if it was new)."""
        rej = decision.rejection
        intent = decision.intent.model_dump_json() if decision.intent is not None else None
        candidate = decision.confirm.candidate
        async with self.pool.acquire() as conn:
            new = await conn.fetchval(
                INSERT,
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
            if new is not None:
                return decision, True
            stored = await conn.fetchval(
                "SELECT event::text FROM risk_decisions WHERE decision_id = $1", decision.id
            )
        return RiskDecision.model_validate_json(stored), False

    async def approved(self, limit: int = 10_000) -> list[RiskDecision]:
        """The most recent approved decisions (oldest first): the book's stops after a restart."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event::text AS e FROM risk_decisions WHERE outcome = 'approved' "
                "ORDER BY decided_at DESC LIMIT $1",
                limit,
            )
        return [RiskDecision.model_validate_json(r["e"]) for r in reversed(rows)]
