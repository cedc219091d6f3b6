"""pytest plugin (``-p decile.testing.plugin``): real servers, isolated per test.

Servers are session-scoped, one set per xdist worker: the URL in
``DECILE_NATS__URL`` / ``DECILE_POSTGRES__DSN`` / ``DECILE_REDIS__URL`` if
set, else a server on the default local port, else an embedded one on a free
port (never the default port, so parallel workers never adopt each other's
servers). ``DECILE_EMBEDDED_ONLY=1`` forces embedded servers.

Isolation is per test, not per server: a NATS namespace that prefixes every
subject and stream, a fresh PostgreSQL database, a Redis key prefix. Each is
torn down after the test (streams deleted, database dropped WITH (FORCE),
keys deleted), so tests can run in parallel on shared servers.

Cleanup is synchronous, or runs its coroutine on a fresh loop in a worker
thread, so these fixtures work the same from sync and async tests whatever
loop pytest-asyncio gives the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from decile import servers

T = TypeVar("T")


def run_in_fresh_loop(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in its own thread, whatever loop is running here."""
    box: dict[str, Any] = {}

    def target() -> None:
        async def main() -> T:
            return await factory()

        try:
            box["value"] = asyncio.run(main())
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=target, name="decile-fixture-cleanup")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def unique_id(prefix: str = "t") -> str:
    """A short unique name: ``t`` + 8 hex chars (a valid namespace, db and key prefix)."""
    return prefix + uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def decile_server_dir() -> Iterator[Path]:
    """Data dir for this worker's embedded servers (JetStream store, PGDATA, logs).

    Under the system temp dir rather than pytest's 0700 basetemp, so an
    embedded PostgreSQL running as a non-root user can reach it.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(tempfile.mkdtemp(prefix=f"decile-{worker}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _session_server(kind: servers.Kind, state_dir: Path) -> Iterator[servers.Endpoint]:
    endpoint = servers.ensure(
        kind, os.environ.get(servers.ENV_VARS[kind]) or None, state_dir / kind, port=0
    )
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def nats_server(decile_server_dir: Path) -> Iterator[servers.Endpoint]:
    """A NATS server with JetStream for this worker's session."""
    yield from _session_server("nats", decile_server_dir)


@pytest.fixture(scope="session")
def postgres_server(decile_server_dir: Path) -> Iterator[servers.Endpoint]:
    """A PostgreSQL server for this worker's session; tests get their own database."""
    yield from _session_server("postgres", decile_server_dir)


@pytest.fixture(scope="session")
def redis_server(decile_server_dir: Path) -> Iterator[servers.Endpoint]:
    """A Redis server for this worker's session; tests get their own key prefix."""
    yield from _session_server("redis", decile_server_dir)


# --------------------------------------------------------------------------- NATS


async def delete_streams(url: str, namespace: str) -> list[str]:
    """Delete every JetStream stream of ``namespace`` (plain, KV_ and OBJ_ buckets)."""
    import nats

    prefixes = (namespace, f"KV_{namespace}", f"OBJ_{namespace}")
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        deleted = []
        for info in await js.streams_info():
            name = info.config.name or ""
            if name.startswith(prefixes):
                await js.delete_stream(name)
                deleted.append(name)
        return deleted
    finally:
        await nc.close()


@pytest.fixture
def nats_url(nats_server: servers.Endpoint) -> str:
    """URL of the session's NATS server."""
    return nats_server.url


@pytest.fixture
def nats_namespace(nats_url: str) -> Iterator[str]:
    """A namespace of this test's own: its streams are deleted at teardown."""
    namespace = unique_id()
    yield namespace
    run_in_fresh_loop(lambda: delete_streams(nats_url, namespace))


# --------------------------------------------------------------------------- PostgreSQL


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database (URL form)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def _pg_execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_dsn(postgres_server: servers.Endpoint) -> Iterator[str]:
    """DSN of a fresh, empty database; dropped WITH (FORCE) after the test."""
    database = unique_id("t_")
    run_in_fresh_loop(lambda: _pg_execute(postgres_server.url, f'CREATE DATABASE "{database}"'))
    yield with_database(postgres_server.url, database)
    run_in_fresh_loop(
        lambda: _pg_execute(
            postgres_server.url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        )
    )


# --------------------------------------------------------------------------- Redis


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN, never KEYS); returns how many."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
        return deleted
    finally:
        client.close()


@pytest.fixture
def redis_url(redis_server: servers.Endpoint) -> str:
    """URL of the session's Redis server."""
    return redis_server.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own (``t1a2b3c4d:``); its keys are deleted at teardown."""
    prefix = unique_id() + ":"
    yield prefix
    delete_keys(redis_url, prefix)


# --------------------------------------------------------------------------- together


@pytest.fixture
def settings_overrides(
    nats_url: str, nats_namespace: str, pg_dsn: str, redis_url: str, redis_prefix: str
) -> dict[str, dict[str, str]]:
    """Nested sections for ``ServiceSettings(**settings_overrides)``, all isolated."""
    return {
        "nats": {"url": nats_url, "namespace": nats_namespace},
        "postgres": {"dsn": pg_dsn},
        "redis": {"url": redis_url, "key_prefix": redis_prefix},
    }


@pytest.fixture
def decile_env(settings_overrides: dict[str, dict[str, str]], tmp_path: Path) -> dict[str, str]:
    """``DECILE_*`` variables for a service subprocess: ``env={**os.environ, **decile_env}``."""
    env = {
        f"DECILE_{section.upper()}__{key.upper()}": value
        for section, values in settings_overrides.items()
        for key, value in values.items()
    }
    env["DECILE_STATE_DIR"] = str(tmp_path / "state")
    return env
