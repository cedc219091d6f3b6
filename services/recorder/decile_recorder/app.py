"""The one bootstrap of the recorder."""

from __future__ import annotations

from typing import Any

import asyncpg

from decile.events import BarBatch, Event
from decile.service import Runtime, create_runtime
from decile.store import migrate
from decile.store.pool import open_pool
from decile_recorder.handlers import Deps, record_bars, record_events
from decile_recorder.settings import RecorderSettings

# (family, kind, stream): everything but bars goes to the event log
EVENT_SOURCES = (
    ("md", "quarantine", "MD"),
    ("ml", None, "SIG"),
    ("risk", None, "RISK"),
    ("exec", None, "EXEC"),
    ("model", None, "MODEL"),
    ("dlq", None, "DLQ"),
)


def create_app(settings: RecorderSettings, pool: asyncpg.Pool | None = None) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("postgres", False)
    holder: dict[str, Any] = {}
    size = settings.recorder.batch_size

    async def on_bars(batches: list[BarBatch]) -> None:
        """Bar cross-sections -> table bars, idempotent on (symbol, tf, ts)."""
        await record_bars(batches, holder["deps"])

    async def on_events(events: list[Event]) -> None:
        """Every other event -> table events, idempotent on id."""
        await record_events(events, holder["deps"])

    rt.subscribe(on_bars, family="md", kind="bars", event=BarBatch, stream="MD",
                 batch=True, batch_size=size)
    for family, kind, stream in EVENT_SOURCES:
        rt.subscribe(on_events, family=family, kind=kind, event=None, stream=stream,
                     batch=True, batch_size=size)

    @rt.on_start
    async def _db() -> None:
        p = pool or await open_pool(settings.postgres)
        async with p.acquire() as conn:
            await migrate.apply(conn)
        holder["deps"] = Deps(p, rt.subjects)
        rt.ready("postgres")

    @rt.on_stop
    async def _close() -> None:
        if pool is None and "deps" in holder:
            await holder["deps"].pool.close()

    return rt
