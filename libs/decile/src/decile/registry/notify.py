"""Registry change notifications: PostgreSQL LISTEN/NOTIFY on channel ``decile_models``.

Why NOTIFY and not a poll or a bus event: the notification is queued by the
same transaction that moves the version (:func:`notify_change` is called from
``db.set_status``), and PostgreSQL delivers it only when that transaction
commits. A listener therefore hears of committed changes only, never of a
refused promotion or a serializable attempt that was retried; there is no
window where the bus says "promoted" and the table does not.

NOTIFY is not durable: a listener that is disconnected misses what happened
meanwhile. :func:`watch_changes` reconnects by itself, and calls
``on_connect`` after every (re)connect, once LISTEN is active: that is where
a consumer re-reads the registry (listen first, then read, so no change falls
between the two).

Payload (JSON object, one per status change, in commit order)::

    {"id": "<uuid>", "family": "entry", "version": "1.2.0",
     "status": "production", "action": "promote", "from_status": "shadow"}

``action`` is ``promote``, ``archive`` or ``rollback`` (the promotions row's
action); ``status`` is the version's new status. A promotion to production
that replaces a version sends two: the replaced one (``archive``) first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import asyncpg

from decile.obs import get_logger
from decile.registry.models import ModelVersion

__all__ = ["CHANNEL", "PAYLOAD_KEYS", "notify_change", "payload", "watch_changes"]

log = get_logger(__name__)

CHANNEL: Final = "decile_models"
PAYLOAD_KEYS: Final = ("id", "family", "version", "status", "action", "from_status")
APPLICATION_NAME: Final = "decile-registry-watch"
# Reconnect backoff (doubles up to the max) and the idle interval after which the
# listener checks its connection is alive (a half-open TCP connection never errors).
RETRY_MIN_S: Final = 0.1
RETRY_MAX_S: Final = 5.0
KEEPALIVE_S: Final = 30.0

_CONNECTION_ERRORS: Final = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def payload(version: ModelVersion, *, action: str, from_status: str) -> dict[str, str]:
    """The notification body for ``version`` after it moved (``version.status`` is the new one)."""
    return {
        "id": str(version.id),
        "family": version.family,
        "version": version.version,
        "status": version.status,
        "action": action,
        "from_status": from_status,
    }


async def notify_change(
    conn: asyncpg.Connection, version: ModelVersion, *, action: str, from_status: str
) -> None:
    """Queue the notification in the caller's transaction (sent at commit, dropped on rollback)."""
    body = json.dumps(payload(version, action=action, from_status=from_status))
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, body)


def _decode(raw: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        log.warning("registry notification ignored", reason="NOT_A_JSON_OBJECT", payload=raw[:200])
        return None
    return doc


class _Inbox:
    """Notifications of one connection, then ``None`` when that connection is lost."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def on_notify(self, _conn: object, _pid: int, _channel: str, raw: str) -> None:
        doc = _decode(raw)
        if doc is not None:
            self.queue.put_nowait(doc)

    def on_lost(self, _conn: object) -> None:
        self.queue.put_nowait(None)


async def _alive(conn: asyncpg.Connection, limit_s: float) -> bool:
    try:
        await conn.fetchval("SELECT 1", timeout=limit_s)
    except _CONNECTION_ERRORS:
        return False
    return True


async def _close(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await conn.close(timeout=2.0)
    except _CONNECTION_ERRORS:
        conn.terminate()


async def watch_changes(
    dsn: str,
    *,
    on_connect: Callable[[], Awaitable[None]] | None = None,
    keepalive_s: float = KEEPALIVE_S,
    retry_min_s: float = RETRY_MIN_S,
    retry_max_s: float = RETRY_MAX_S,
) -> AsyncIterator[dict[str, Any]]:
    """Yield every registry status change as a payload dict, forever, across reconnects.

    Runs on a dedicated connection (``application_name`` ``decile-registry-watch``),
    never a pool's: LISTEN belongs to a session. ``on_connect`` is awaited after
    each successful LISTEN, the first included (re-sync there: changes made while
    disconnected are not replayed). Connection failures are logged and retried
    with backoff; an exception from ``on_connect`` propagates. Closing the
    generator (``break``, ``aclose()``, cancellation) closes the connection.
    """
    delay = retry_min_s
    while True:
        inbox = _Inbox()  # one per connection: nothing of a dead one leaks into the next
        try:
            conn = await asyncpg.connect(
                dsn, server_settings={"application_name": APPLICATION_NAME}
            )
        except _CONNECTION_ERRORS as err:
            log.warning("registry watch: connect failed", error=repr(err), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)
            continue
        try:
            conn.add_termination_listener(inbox.on_lost)
            try:
                await conn.add_listener(CHANNEL, inbox.on_notify)
                listening = True
            except _CONNECTION_ERRORS as err:
                log.warning("registry watch: LISTEN failed", error=repr(err), retry_in_s=delay)
                listening = False
            if listening:
                log.info("registry watch: listening", channel=CHANNEL)
                if on_connect is not None:
                    await on_connect()
                delay = retry_min_s
                while True:
                    try:
                        item = await asyncio.wait_for(inbox.queue.get(), timeout=keepalive_s)
                    except TimeoutError:
                        if await _alive(conn, min(keepalive_s, 10.0)):
                            continue
                        item = None
                    if item is None:
                        log.warning("registry watch: connection lost; reconnecting")
                        break
                    yield item
        finally:
            await _close(conn)
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry_max_s)
