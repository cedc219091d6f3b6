"""``decile kill on|off|status`` against real NATS: the KV switch and the RISK-stream event."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
import typer
from typer.testing import CliRunner, Result

from decile import codec, obs, servers
from decile.cli.kill import register
from decile.events import KillSwitchChanged
from decile.killswitch import KillSwitches
from decile.risk import KillState
from decile.testing.probes import stream_messages

runner = CliRunner()


def make_app() -> typer.Typer:
    """A root app like ``decile``'s: logs to stderr, then the kill commands."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        obs.configure("decile", "WARNING", "console")

    register(app)
    return app


@pytest.fixture
def env(nats_url: str, nats_namespace: str) -> dict[str, str]:
    return {
        "DECILE_NATS__URL": nats_url,
        "DECILE_NATS__NAMESPACE": nats_namespace,
        "DECILE_ACTOR": "alice",
    }


def kill(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(make_app(), ["kill", *args], env=env)


def events(url: str, namespace: str) -> list[KillSwitchChanged]:
    async def read() -> list[KillSwitchChanged]:
        nc = await nats.connect(url)
        try:
            msgs = await stream_messages(nc.jetstream(), f"{namespace}_RISK")
            out = []
            for m in msgs:
                event = codec.decode(m.data, dict(m.headers or {}))
                assert isinstance(event, KillSwitchChanged)
                assert m.subject == f"{namespace}.risk.kill.{event.scope}"
                out.append(event)
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def state(url: str, namespace: str) -> KillState:
    async def read() -> KillState:
        nc = await nats.connect(url)
        try:
            return await (await KillSwitches.open(nc.jetstream(), namespace)).state()
        finally:
            await nc.close()

    return asyncio.run(read())


def test_master_on_sets_the_switch_and_publishes_the_event(
    env: dict[str, str], nats_url: str, nats_namespace: str
) -> None:
    result = kill(env, "on", "--reason", "exchange outage")
    assert result.exit_code == 0, result.output
    assert "kill switch master: ON (exchange outage; by alice)" in result.stdout
    assert state(nats_url, nats_namespace).master
    [event] = events(nats_url, nats_namespace)
    assert (event.scope, event.key, event.on, event.reason, event.by, event.producer) == (
        "master",
        "*",
        True,
        "exchange outage",
        "alice",
        "kill-cli",
    )


def test_symbol_and_strategy_switches_go_on_and_off(
    env: dict[str, str], nats_url: str, nats_namespace: str
) -> None:
    assert kill(env, "on", "--symbol", "btc/usdt", "--reason", "delisting").exit_code == 0
    assert kill(env, "on", "--strategy", "breakout", "-r", "bug 42").exit_code == 0
    s = state(nats_url, nats_namespace)
    assert (s.master, s.symbols, s.strategies) == (False, {"BTC/USDT"}, {"breakout"})

    off = kill(env, "off", "--symbol", "BTC-USDT", "--json")
    assert off.exit_code == 0, off.output
    doc = json.loads(off.stdout)
    assert (doc["switch"], doc["on"], doc["reason"], doc["published"]) == (
        "symbol.BTC-USDT",
        False,
        "cleared",
        True,
    )
    assert state(nats_url, nats_namespace).symbols == frozenset()
    published = [(e.scope, e.key, e.on) for e in events(nats_url, nats_namespace)]
    assert published == [
        ("symbol", "BTC/USDT", True),
        ("strategy", "breakout", True),
        ("symbol", "BTC/USDT", False),
    ]


def test_status_shows_every_switch_as_a_table_or_json(env: dict[str, str]) -> None:
    assert "no switch was ever set" in kill(env, "status").stdout
    kill(env, "on", "--reason", "maintenance")
    kill(env, "on", "--strategy", "meanrev", "--reason", "review")
    kill(env, "off", "--reason", "done")

    table = kill(env, "status")
    assert table.exit_code == 0, table.output
    assert "HALTED" not in table.stdout  # master is off again; a strategy switch halts one
    assert "strategy.meanrev" in table.stdout
    assert "review" in table.stdout

    doc = json.loads(kill(env, "status", "--json").stdout)
    assert (doc["halted"], doc["master"], doc["strategies"]) == (False, False, ["meanrev"])
    by_key = {s["switch"]: s for s in doc["switches"]}
    assert (by_key["master"]["on"], by_key["master"]["reason"]) == (False, "done")
    assert by_key["strategy.meanrev"]["by"] == "alice"

    kill(env, "on", "--reason", "again")
    assert "HALTED" in kill(env, "status").stdout


def test_on_without_a_reason_is_a_clear_usage_error(
    env: dict[str, str], nats_url: str, nats_namespace: str
) -> None:
    result = kill(env, "on", "--symbol", "BTC/USDT")
    assert result.exit_code == 2
    assert "needs --reason" in result.output
    assert kill(env, "on", "--reason", "   ").exit_code == 2
    assert state(nats_url, nats_namespace) == KillState()


def test_bad_targets_are_usage_errors(env: dict[str, str]) -> None:
    both = kill(env, "on", "--symbol", "BTC/USDT", "--strategy", "x", "--reason", "r")
    assert both.exit_code == 2
    assert "at most one of" in both.output
    bad = kill(env, "on", "--symbol", "BRK.B", "--reason", "r")
    assert bad.exit_code == 2
    assert "cannot be a subject token" in bad.output


def test_an_unreachable_server_is_one_clear_line(env: dict[str, str]) -> None:
    url = f"nats://127.0.0.1:{servers.free_port()}"
    quick = {"DECILE_NATS__CONNECT_TIMEOUT_S": "0.5", "DECILE_NATS__RECONNECT_WAIT_S": "0.5"}
    result = kill({**env, **quick, "DECILE_NATS__URL": url}, "status")
    assert result.exit_code == 2
    assert f"cannot reach NATS at {url}" in result.output
