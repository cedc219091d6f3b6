"""Registry notifications on a real PostgreSQL: heard at commit, never for what rolled back."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from serving_registry_support import add, listening

from decile.registry import CHANNEL, GateConfig, PromotionRefused, Registry, lifecycle
from decile.registry import db as registry_db
from decile.registry.notify import APPLICATION_NAME, PAYLOAD_KEYS


async def test_promotions_and_a_rollback_are_heard_in_commit_order(
    registry: Registry, pg_dsn: str
) -> None:
    v1 = await add(registry)
    async with listening(pg_dsn) as heard:
        await registry.promote(v1.id, actor="t")
        v1 = await registry.promote(v1.id, actor="t")
        v2 = await add(registry, over=v1)
        await registry.promote(v2.id, actor="t")
        await registry.promote(v2.id, actor="t")
        restored = await registry.rollback("entry", actor="t", reason="bad fills")
        got = [await heard.next() for _ in range(7)]
    assert restored.id == v1.id
    assert all(tuple(c) == PAYLOAD_KEYS for c in got)
    assert [(c["version"], c["from_status"], c["status"], c["action"]) for c in got] == [
        ("1.0.0", "staging", "shadow", "promote"),
        ("1.0.0", "shadow", "production", "promote"),
        ("1.1.0", "staging", "shadow", "promote"),
        ("1.0.0", "production", "archived", "archive"),  # replaced, same transaction
        ("1.1.0", "shadow", "production", "promote"),
        ("1.1.0", "production", "archived", "rollback"),
        ("1.0.0", "archived", "production", "rollback"),
    ]
    assert {c["family"] for c in got} == {"entry"}
    assert got[-1]["id"] == str(v1.id)


async def test_a_rolled_back_or_refused_change_sends_nothing(
    registry: Registry, pg_dsn: str
) -> None:
    v = await add(registry)
    weak = await add(registry, auc=0.5)
    conn = await asyncpg.connect(pg_dsn)
    await registry_db.init_connection(conn)
    try:
        async with listening(pg_dsn) as heard:
            tx = conn.transaction()
            await tx.start()
            moved = await lifecycle.promote(
                conn, v.id, None, actor="t", reason="", config=GateConfig()
            )
            assert moved.status == "shadow"
            await tx.rollback()
            with pytest.raises(PromotionRefused, match="AUC_BELOW_FLOOR"):
                await registry.promote(weak.id, actor="t")
            await registry.archive(v.id, actor="t")  # committed: the first thing heard
            first = await heard.next()
            await asyncio.sleep(0.2)
            assert heard.queue.empty()
    finally:
        await conn.close()
    assert (first["id"], first["action"], first["from_status"]) == (str(v.id), "archive",
                                                                   "staging")
    assert (await registry.get(weak.id)).status == "staging"


async def test_the_listener_reconnects_after_losing_its_connection(
    registry: Registry, pg_dsn: str
) -> None:
    v = await add(registry)
    async with listening(pg_dsn, retry_min_s=0.05) as heard:
        admin = await asyncpg.connect(pg_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
        finally:
            await admin.close()
        assert killed == 1
        await heard.reconnected(2)
        await registry.promote(v.id, actor="t")
        change = await heard.next()
    assert (change["id"], change["status"]) == (str(v.id), "shadow")


async def test_registry_watch_and_a_foreign_payload_on_the_channel(
    registry: Registry, pg_dsn: str
) -> None:
    v = await add(registry)
    connected = asyncio.Event()

    async def on_connect() -> None:
        connected.set()

    changes = registry.watch(on_connect=on_connect)
    first = asyncio.ensure_future(anext(changes))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("SELECT pg_notify($1, 'not json')", CHANNEL)
            await conn.execute("SELECT pg_notify($1, '[1, 2]')", CHANNEL)
        finally:
            await conn.close()
        await registry.promote(v.id, actor="t")
        change = await asyncio.wait_for(first, 10)
    finally:
        await changes.aclose()
    assert (change["id"], change["action"]) == (str(v.id), "promote")
