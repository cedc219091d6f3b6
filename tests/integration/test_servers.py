"""Find-or-start servers: embedded NATS (JetStream), Redis and PostgreSQL for real."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
import redis

from decile import servers
from decile.testing.probes import group_members


def assert_gone(endpoint: servers.Endpoint) -> None:
    assert endpoint.pid is not None
    assert group_members(endpoint.pid) == []
    assert not servers.answers(endpoint.url)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """Outside pytest's 0700 basetemp, as a non-root PostgreSQL user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="decile-servers-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_embedded_nats_has_jetstream_and_leaves_nothing_behind(state_dir: Path) -> None:
    endpoint = servers.ensure_nats(None, state_dir, prefer_embedded=True, port=0)
    try:
        assert endpoint.origin == "embedded"
        assert endpoint.url != servers.DEFAULT_URLS["nats"]
        nc = await nats.connect(endpoint.url)
        js = nc.jetstream()
        account = await js.account_info()
        assert account.limits is not None
        await js.add_stream(name="SMOKE", subjects=["smoke.>"])
        ack = await js.publish("smoke.one", b"hello")
        assert ack.stream == "SMOKE"
        await nc.close()
        assert (state_dir / "nats" / "jetstream").is_dir()
    finally:
        endpoint.stop()
    assert_gone(endpoint)


def test_embedded_redis_works_without_persistence_and_leaves_nothing_behind(
    state_dir: Path,
) -> None:
    endpoint = servers.ensure_redis(None, state_dir, prefer_embedded=True, port=0)
    try:
        assert endpoint.origin == "embedded"
        client = redis.Redis.from_url(endpoint.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        client.close()
    finally:
        endpoint.stop()
    assert_gone(endpoint)
    assert not list(state_dir.rglob("*.pid"))
    assert not list(state_dir.rglob("*.rdb"))


async def test_embedded_postgres_works_and_leaves_no_process_or_pid_file(
    state_dir: Path,
) -> None:
    endpoint = servers.ensure_postgres(None, state_dir, prefer_embedded=True, port=0)
    try:
        assert endpoint.origin == "embedded"
        conn = await asyncpg.connect(endpoint.url)
        await conn.execute("CREATE TABLE t (id int primary key)")
        await conn.execute("INSERT INTO t VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
        await conn.close()
    finally:
        endpoint.stop()
    assert_gone(endpoint)
    assert not (state_dir / "postgres" / "postmaster.pid").exists()


def test_embedded_postgres_restarts_on_its_existing_data(state_dir: Path) -> None:
    first = servers.ensure_postgres(None, state_dir, prefer_embedded=True, port=0)
    first.stop()
    second = servers.ensure_postgres(None, state_dir, prefer_embedded=True, port=0)
    try:
        assert servers.answers(second.url)
    finally:
        second.stop()
    assert_gone(second)


def test_stop_is_idempotent_and_a_noop_for_servers_we_did_not_start(state_dir: Path) -> None:
    endpoint = servers.ensure_redis(None, state_dir, prefer_embedded=True, port=0)
    endpoint.stop()
    endpoint.stop()
    borrowed = servers.Endpoint("redis", endpoint.url, "env")
    borrowed.stop()
    assert not borrowed.owned


@pytest.mark.parametrize(
    ("kind", "scheme"),
    [("nats", "nats://"), ("postgres", "postgresql://postgres@"), ("redis", "redis://")],
)
def test_an_env_url_that_does_not_answer_is_an_error_naming_the_variable(
    kind: servers.Kind, scheme: str, state_dir: Path
) -> None:
    url = f"{scheme}127.0.0.1:{servers.free_port()}"
    with pytest.raises(servers.ServerUnavailable, match=servers.ENV_VARS[kind]):
        servers.ensure(kind, url, state_dir)
    assert not (state_dir / kind).exists()


def test_the_error_for_an_unanswering_url_hides_its_password(state_dir: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{servers.free_port()}/0"
    with pytest.raises(servers.ServerUnavailable) as err:
        servers.ensure_redis(url, state_dir)
    assert "hunter2" not in str(err.value)
    assert "DECILE_REDIS__URL" in str(err.value)


def test_an_env_url_that_answers_is_used_as_it_is(redis_server: servers.Endpoint) -> None:
    endpoint = servers.ensure_redis(redis_server.url, Path("/nonexistent"))
    assert (endpoint.origin, endpoint.url) == ("env", redis_server.url)


def test_answers_tells_each_protocol_from_another_listener(
    redis_server: servers.Endpoint, nats_server: servers.Endpoint
) -> None:
    redis_hostport = redis_server.url.split("://", 1)[1].split("/", 1)[0]
    nats_hostport = nats_server.url.split("://", 1)[1]
    assert servers.answers(redis_server.url)
    assert servers.answers(nats_server.url)
    assert not servers.answers(f"nats://{redis_hostport}")
    assert not servers.answers(f"postgresql://postgres@{nats_hostport}/postgres")
    assert not servers.answers(f"nats://127.0.0.1:{servers.free_port()}")


def test_embedded_only_env_var_skips_a_server_on_the_default_port(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(servers.EMBEDDED_ONLY_ENV, "1")
    endpoint = servers.ensure_redis(None, state_dir, port=0)
    try:
        assert endpoint.origin == "embedded"
    finally:
        endpoint.stop()
    assert_gone(endpoint)


def test_a_server_on_the_default_port_is_reused(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(servers.EMBEDDED_ONLY_ENV, raising=False)
    if not servers.answers(servers.DEFAULT_URLS["nats"]):
        pytest.skip("no NATS on the default port on this machine")
    endpoint = servers.ensure_nats(None, state_dir)
    assert (endpoint.origin, endpoint.url) == ("local", servers.DEFAULT_URLS["nats"])


def test_ensure_servers_stops_what_it_started_when_a_later_one_fails(state_dir: Path) -> None:
    env = {"DECILE_REDIS__URL": f"redis://127.0.0.1:{servers.free_port()}/0"}
    before = set(Path("/proc").glob("[0-9]*"))
    with pytest.raises(servers.ServerUnavailable, match="DECILE_REDIS__URL"):
        servers.ensure_servers({"nats", "redis"}, state_dir, env=env, prefer_embedded=True)
    assert (state_dir / "nats.log").exists()  # NATS was started first...
    started = {p for p in Path("/proc").glob("[0-9]*") if p not in before}
    names = {(p / "comm").read_text().strip() for p in started if (p / "comm").exists()}
    assert "nats-server" not in names  # ...and stopped again
