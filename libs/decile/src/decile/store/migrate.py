"""Versioned SQL migrations, applied at start under an advisory lock.

Files ``migrations/NNNN_name.sql`` run once each, in order, each in its own
transaction; the checksum of an applied file is recorded and an edited file is
refused (write a new migration instead). Several services starting at once
serialise on the lock, so a migration never runs twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from decile.obs import get_logger

log = get_logger(__name__)
LOCK_KEY = 0x0DEC11E  # pg_advisory_lock key shared by every Decile process


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for entry in resources.files("decile.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
        applied = []
        for m in available():
            if m.version in done:
                if done[m.version]["checksum"] != m.checksum:
                    raise MigrationError(
                        f"migration {m.name} was edited after it was applied; add a new one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version, m.name, m.checksum,
                )
            applied.append(m.name)
        await _hypertables(conn)
        if applied:
            log.info("migrations applied", names=applied)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _hypertables(conn: asyncpg.Connection) -> None:
    """Bars become a TimescaleDB hypertable where the extension exists."""
    has = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if not has:
        return
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        await conn.execute(
            "SELECT create_hypertable('bars', 'ts', if_not_exists => TRUE, migrate_data => TRUE)"
        )
    except asyncpg.PostgresError as err:  # e.g. not preloaded: the plain table still works
        log.warning("timescaledb present but not usable; keeping a plain table", error=str(err))
