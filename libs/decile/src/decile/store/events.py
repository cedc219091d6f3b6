"""Event log: every recorded event once, keyed by its id."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from decile import codec
from decile.events import ColumnarEvent, Event

_COLUMNS = ("id", "type", "subject", "ts_event", "trace_id", "producer", "symbol", "body")


def _symbol(event: Event) -> str | None:
    for path in ("symbol", "candidate.symbol", "confirm.candidate.symbol"):
        obj: object = event
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, str):
            return obj
    return None


def _body(event: Event) -> str:
    """The JSON stored for an event; a cross-section keeps its envelope only."""
    if isinstance(event, ColumnarEvent):
        return event.model_dump_json(exclude={"values"})
    return codec.encode(event)[0].decode()


async def write_events(conn: asyncpg.Connection, events: Sequence[tuple[Event, str]]) -> int:
    """Store ``(event, subject)`` pairs; an id already stored is skipped. Returns new rows."""
    if not events:
        return 0
    records = [
        (
            e.id,
            e.type_name,
            subject,
            e.ts_event,
            e.trace_id,
            e.producer,
            _symbol(e),
            _body(e),
        )
        for e, subject in events
    ]
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS events_in "
            "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("events_in", records=records, columns=_COLUMNS)
        status = await conn.execute(
            f"INSERT INTO events ({', '.join(_COLUMNS)}) "
            f"SELECT {', '.join(_COLUMNS)} FROM events_in ON CONFLICT (id) DO NOTHING"
        )
    return int(status.rsplit(" ", 1)[1])
