"""The pytest plugin's fixtures: real servers, one namespace/database/prefix per test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import nats
import pytest
import redis

from decile import servers
from decile.config import ServiceSettings
from decile.testing.plugin import run_in_fresh_loop

INNER_TESTS = """
import json, os
import asyncpg, nats, redis

def record(**values):
    with open(os.environ["INNER_RECORD"], "a") as f:
        f.write(json.dumps(values) + "\\n")

async def _use_all(nats_url, nats_namespace, pg_dsn, redis_url, redis_prefix):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=f"{nats_namespace}_MD", subjects=[f"{nats_namespace}.md.>"])
    await js.publish(f"{nats_namespace}.md.bars", b"x")
    kv = await js.create_key_value(bucket=f"{nats_namespace}_kill")
    await kv.put("master", b"off")
    await nc.close()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE bars (id int)")
    db = await conn.fetchval("SELECT current_database()")
    await conn.close()
    r = redis.Redis.from_url(redis_url)
    r.set(redis_prefix + "vec:BTC:1m", b"1")
    r.close()
    record(namespace=nats_namespace, db=db, prefix=redis_prefix)

def test_sync_one(nats_url, nats_namespace, pg_dsn, redis_url, redis_prefix):
    import asyncio
    asyncio.run(_use_all(nats_url, nats_namespace, pg_dsn, redis_url, redis_prefix))

async def test_async_two(nats_url, nats_namespace, pg_dsn, redis_url, redis_prefix):
    await _use_all(nats_url, nats_namespace, pg_dsn, redis_url, redis_prefix)
"""


def _run_inner(tmp_path: Path, env: dict[str, str]) -> list[dict[str, str]]:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent("""\
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            """)
    )
    record = tmp_path / "record.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "decile.testing.plugin",
         "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=tmp_path, env={**os.environ, **env, "INNER_RECORD": str(record)},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    return [json.loads(line) for line in record.read_text().splitlines()]


async def _streams(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return [s.config.name or "" for s in await nc.jetstream().streams_info()]
    finally:
        await nc.close()


async def _databases(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
    finally:
        await conn.close()


def test_two_tests_get_different_namespaces_databases_and_prefixes_all_dropped_after(
    tmp_path: Path,
    nats_server: servers.Endpoint,
    postgres_server: servers.Endpoint,
    redis_server: servers.Endpoint,
) -> None:
    env = {ep.env_var: ep.url for ep in (nats_server, postgres_server, redis_server)}
    first, second = _run_inner(tmp_path, env)

    assert first["namespace"] != second["namespace"]
    assert first["db"] != second["db"]
    assert first["prefix"] != second["prefix"]
    namespaces = (first["namespace"], second["namespace"])
    leftover = [s for s in run_in_fresh_loop(lambda: _streams(nats_server.url))
                if any(ns in s for ns in namespaces)]  # fmt: skip
    assert leftover == []
    databases = run_in_fresh_loop(lambda: _databases(postgres_server.url))
    assert first["db"] not in databases
    assert second["db"] not in databases
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert list(client.scan_iter(match=first["prefix"] + "*")) == []
        assert list(client.scan_iter(match=second["prefix"] + "*")) == []
    finally:
        client.close()


def test_names_are_short_and_valid_for_settings(
    nats_namespace: str, redis_prefix: str, pg_dsn: str
) -> None:
    assert re.fullmatch(r"t[0-9a-f]{8}", nats_namespace)
    assert re.fullmatch(r"t[0-9a-f]{8}:", redis_prefix)
    assert re.search(r"/t_[0-9a-f]{8}$", pg_dsn.split("?")[0])


async def test_pg_dsn_is_a_fresh_empty_database(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") != "postgres"
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


def test_settings_overrides_build_service_settings(
    settings_overrides: dict[str, dict[str, str]],
) -> None:
    settings = ServiceSettings(**settings_overrides)  # type: ignore[arg-type]
    assert settings.nats.url == settings_overrides["nats"]["url"]
    assert settings.nats.namespace == settings_overrides["nats"]["namespace"]
    assert settings.postgres.dsn.get_secret_value() == settings_overrides["postgres"]["dsn"]
    assert settings.redis.key_prefix == settings_overrides["redis"]["key_prefix"]


def test_decile_env_gives_a_subprocess_the_same_settings(
    decile_env: dict[str, str],
    settings_overrides: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in decile_env.items():
        monkeypatch.setenv(key, value)
    from_env = ServiceSettings()
    from_overrides = ServiceSettings(**settings_overrides)  # type: ignore[arg-type]
    assert from_env.nats == from_overrides.nats
    assert from_env.postgres == from_overrides.postgres
    assert from_env.redis == from_overrides.redis
    assert decile_env["DECILE_STATE_DIR"]
