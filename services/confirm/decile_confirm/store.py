"""Open windows in PostgreSQL (table ``confirm_windows``, migration 0004).

A window's row is written before its candidate is acked and deleted after its
decision is published: whatever the crash, a candidate is either still in the
stream or its window is in the table, and a window is never deleted undecided.
"""

from __future__ import annotations

import json

import asyncpg

from decile.confirm import Window
from decile.obs import get_logger
from decile_confirm import metrics as m

log = get_logger(__name__)


class WindowStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def save(self, window: Window) -> None:
        """Insert the window; a row already there (a redelivered candidate) is kept."""
        c = window.candidate
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO confirm_windows (candidate_id, symbol, deadline, state, opened_at)"
                " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (candidate_id) DO NOTHING",
                c.id, c.symbol, window.deadline, json.dumps(window.to_dict()), window.opened_at,
            )

    async def delete(self, candidate_id: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM confirm_windows WHERE candidate_id = $1", candidate_id)

    async def load(self) -> list[Window]:
        """Every persisted window; an unreadable row is logged, counted and left in place."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT candidate_id, state::text AS state FROM confirm_windows"
                " ORDER BY opened_at, candidate_id"
            )
        out: list[Window] = []
        for row in rows:
            try:
                out.append(Window.from_dict(json.loads(row["state"])))
            except ValueError as err:  # JSONDecodeError is a ValueError too
                m.UNREADABLE.inc()
                log.error("persisted window unreadable, left in the table",
                          candidate_id=row["candidate_id"], error=str(err)[:300])
        return out
