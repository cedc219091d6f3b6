"""One trainer per family at a time, across hosts: a PostgreSQL session advisory lock.

The lock lives on a dedicated connection, so it is released on exit and also
when the trainer's process dies (the server drops the session).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from decile.registry.errors import TrainingInProgress


def lock_key(family: str) -> int:
    """A stable signed 64-bit key from ``decile.train:<family>`` (same in every process)."""
    digest = hashlib.sha256(f"decile.train:{family}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def training_lock(dsn: str, family: str) -> AsyncIterator[None]:
    """Hold the family's training lock, or raise ``TrainingInProgress`` at once."""
    conn = await asyncpg.connect(dsn)
    try:
        key = lock_key(family)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            raise TrainingInProgress(family)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        await conn.close()
