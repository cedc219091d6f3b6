"""Glue: decoded batches in, one transaction per batch out."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from decile.bus import subject_for
from decile.events import BarBatch, Event
from decile.store.bars import write_bars
from decile.store.events import write_events
from decile.subjects import Subjects
from decile_recorder import metrics


@dataclass
class Deps:
    pool: asyncpg.Pool
    subjects: Subjects


async def record_bars(batches: list[BarBatch], deps: Deps) -> None:
    start = time.perf_counter()
    async with deps.pool.acquire() as conn:
        new = await write_bars(conn, batches)
    total = sum(len(b.symbols) for b in batches)
    metrics.ROWS.labels("bars").inc(new)
    metrics.SKIPPED.labels("bars").inc(total - new)
    metrics.BATCH_SECONDS.labels("bars").observe(time.perf_counter() - start)


async def record_events(events: list[Event], deps: Deps) -> None:
    start = time.perf_counter()
    pairs = [(e, subject_for(e, deps.subjects)) for e in events]
    async with deps.pool.acquire() as conn:
        new = await write_events(conn, pairs)
    metrics.ROWS.labels("events").inc(new)
    metrics.SKIPPED.labels("events").inc(len(events) - new)
    metrics.BATCH_SECONDS.labels("events").observe(time.perf_counter() - start)
