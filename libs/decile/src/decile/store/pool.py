"""The services' PostgreSQL pool: one round trip per use, not two.

asyncpg resets a connection each time it goes back to the pool (releases
advisory locks, closes cursors, UNLISTENs, RESETs settings): one more round
trip on every ``async with pool.acquire()``, on the decision path of risk,
confirm and execution. Their pool connections keep no session state (the
migration lock is released explicitly, LISTEN lives on the registry's own
connections), so the pools here skip that query; an open transaction is still
rolled back by asyncpg itself.
"""

from __future__ import annotations

import asyncpg

from decile.config import PostgresSettings

__all__ = ["open_pool"]


class _StatelessConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        return ""


async def open_pool(postgres: PostgresSettings) -> asyncpg.Pool:
    """A pool on ``postgres.dsn`` sized by ``pool_min`` / ``pool_max``."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        postgres.dsn.get_secret_value(),
        min_size=postgres.pool_min,
        max_size=postgres.pool_max,
        connection_class=_StatelessConnection,
    )
    return pool
