"""Bar store: COPY into a temp table, then one idempotent INSERT per batch of cycles.

A replayed or redelivered cycle inserts nothing new (``ON CONFLICT DO NOTHING``
on symbol, tf, bar time): the first write wins and is never doubled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import numpy as np

from decile.events import BarBatch

COLUMNS = ("symbol", "tf", "ts", "open", "high", "low", "close", "volume", "batch_id")


async def write_bars(conn: asyncpg.Connection, batches: Sequence[BarBatch]) -> int:
    """Store every bar of ``batches``; returns how many rows were new."""
    records: list[tuple[object, ...]] = []
    for b in batches:  # tolist() once per batch: a Python float per cell, not per numpy scalar
        tf, bt, bid = b.tf, b.bar_time, b.id
        records.extend(
            (s, tf, bt, r[0], r[1], r[2], r[3], r[4], bid)
            for s, r in zip(b.symbols, b.values.tolist(), strict=True)
        )
    if not records:
        return 0
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bars_in (LIKE bars INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("bars_in", records=records, columns=COLUMNS)
        status = await conn.execute(
            "INSERT INTO bars SELECT * FROM bars_in ON CONFLICT (symbol, tf, ts) DO NOTHING"
        )
    return int(status.rsplit(" ", 1)[1])


async def read_bars(
    conn: asyncpg.Connection,
    tf: str,
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bars in event-time order: (symbols per row, ts ms per row, OHLCV matrix)."""
    rows = await conn.fetch(
        """SELECT symbol, (extract(epoch FROM ts) * 1000)::int8 AS ms,
                  open, high, low, close, volume
             FROM bars
            WHERE tf = $1
              AND ($2::timestamptz IS NULL OR ts >= $2)
              AND ($3::timestamptz IS NULL OR ts < $3)
              AND ($4::text[] IS NULL OR symbol = ANY($4))
            ORDER BY ts, symbol""",
        tf, start, end, list(symbols) if symbols is not None else None,
    )
    syms = [r["symbol"] for r in rows]
    ts = np.fromiter((r["ms"] for r in rows), dtype=np.int64, count=len(rows))
    values = np.array([tuple(r)[2:] for r in rows], dtype=np.float64).reshape(len(rows), 5)
    return syms, ts, values
