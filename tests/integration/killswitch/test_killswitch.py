"""Kill switches on a real JetStream KV bucket: set, clear, read back, watch, two writers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from decile.killswitch import (
    KillSwitches,
    Switch,
    bucket_name,
    changed_event,
    parse_switch_key,
    switch_key,
)
from decile.risk import KillState
from decile.testing.plugin import unique_id

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
async def switches(js: JetStreamContext, nats_namespace: str) -> KillSwitches:
    return await KillSwitches.open(js, nats_namespace)


async def test_the_bucket_is_namespaced_and_starts_with_nothing_on(
    js: JetStreamContext, switches: KillSwitches, nats_namespace: str
) -> None:
    assert bucket_name(nats_namespace) == f"{nats_namespace}_decile-kill"
    info = await js.stream_info(f"KV_{nats_namespace}_decile-kill")
    assert info.config.max_msgs_per_subject == 16  # history of who/when/why per switch
    assert await switches.state() == KillState()
    assert await switches.switches() == []


async def test_sets_and_clears_master_symbol_strategy_and_auto_switches(
    switches: KillSwitches,
) -> None:
    await switches.set("master", on=True, reason="exchange down", by="alice")
    await switches.set("symbol", "BTC/USDT", on=True, reason="delisting", by="bob")
    await switches.set("strategy", "breakout", on=True, reason="bug 42", by="bob")
    await switches.set("auto", "daily_loss", on=True, reason="latched", by="risk")
    state = await switches.state()
    assert state.master
    assert state.halted
    assert state.symbols == {"BTC/USDT"}
    assert state.strategies == {"breakout"}
    assert state.auto == {"daily_loss"}
    assert dict(state.reasons) == {
        "master": "exchange down",
        "symbol.BTC-USDT": "delisting",
        "strategy.breakout": "bug 42",
        "auto.daily_loss": "latched",
    }

    await switches.set("master", on=False, by="alice")
    await switches.set("auto", "daily_loss", on=False, reason="new day", by="risk")
    state = await switches.state()
    assert not state.master
    assert not state.halted
    assert state.symbols == {"BTC/USDT"}
    cleared = {s.kv_key: s for s in await switches.switches()}["master"]
    assert (cleared.on, cleared.reason, cleared.by) == (False, "cleared", "alice")


async def test_values_are_the_documented_json_and_read_back_from_another_connection(
    js: JetStreamContext, switches: KillSwitches, nats_url: str, nats_namespace: str
) -> None:
    written = await switches.set("symbol", "ETH/USDT", on=True, reason="halt", by="ops", at=AT)
    entry = await switches.kv.get("symbol.ETH-USDT")
    assert entry.value is not None
    assert json.loads(entry.value) == {
        "on": True,
        "reason": "halt",
        "by": "ops",
        "at": "2024-03-01T12:00:00+00:00",
    }
    assert written.revision == entry.revision
    other = await nats.connect(nats_url)
    try:
        again = await KillSwitches.open(other.jetstream(), nats_namespace)
        assert await again.switches() == [written]
        assert await again.state() == await switches.state()
    finally:
        await other.close()


async def test_watch_sees_a_change_within_a_second(switches: KillSwitches) -> None:
    states: asyncio.Queue[KillState] = asyncio.Queue()

    async def pump() -> None:
        async for state in switches.watch():
            await states.put(state)

    task = asyncio.create_task(pump())
    try:
        assert await asyncio.wait_for(states.get(), 5) == KillState()
        await switches.set("symbol", "SOL/USDT", on=True, reason="outage", by="ops")
        state = await asyncio.wait_for(states.get(), 1.0)
        assert state.symbols == {"SOL/USDT"}
        await switches.set("master", on=True, reason="all stop", by="ops")
        assert (await asyncio.wait_for(states.get(), 1.0)).master
        await switches.set("master", on=False, by="ops")
        assert not (await asyncio.wait_for(states.get(), 1.0)).master
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_watch_started_later_replays_the_current_state_first(
    switches: KillSwitches,
) -> None:
    await switches.set("strategy", "meanrev", on=True, reason="review", by="ops")
    watch = switches.watch()
    try:
        first = await asyncio.wait_for(anext(watch), 5)
        assert first.strategies == {"meanrev"}
    finally:
        await watch.aclose()


async def test_two_writers_both_land_and_the_last_write_of_a_key_wins(
    nats_url: str, nats_namespace: str, switches: KillSwitches
) -> None:
    a_conn, b_conn = await nats.connect(nats_url), await nats.connect(nats_url)
    try:
        a = await KillSwitches.open(a_conn.jetstream(), nats_namespace)
        b = await KillSwitches.open(b_conn.jetstream(), nats_namespace)
        await asyncio.gather(
            a.set("symbol", "BTC/USDT", on=True, reason="a", by="a"),
            b.set("symbol", "ETH/USDT", on=True, reason="b", by="b"),
        )
        first = await a.set("master", on=True, reason="a halts", by="a")
        second = await b.set("master", on=False, reason="b resumes", by="b")
        assert second.revision > first.revision
        state = await switches.state()
        assert state.symbols == {"BTC/USDT", "ETH/USDT"}
        assert not state.master
        async def writers() -> list[str]:
            history = await switches.kv.history("master")
            return [json.loads(e.value or b"")["by"] for e in history]

        # KV history is read through a watcher that may report "caught up" before the
        # last entry under load: read again until both writes show, bounded
        deadline = asyncio.get_running_loop().time() + 10
        seen = await writers()
        while seen != ["a", "b"] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            seen = await writers()
        assert seen == ["a", "b"]
    finally:
        await a_conn.close()
        await b_conn.close()


async def test_two_processes_opening_a_new_bucket_at_once_share_it(
    js: JetStreamContext, nats_namespace: str
) -> None:
    namespace = unique_id()
    try:
        a, b = await asyncio.gather(
            KillSwitches.open(js, namespace), KillSwitches.open(js, namespace)
        )
        await a.set("master", on=True, reason="x", by="a")
        assert (await b.state()).master
        mine = await KillSwitches.open(js, nats_namespace)
        assert not (await mine.state()).master  # another namespace sees nothing
    finally:
        await js.delete_key_value(bucket_name(namespace))


async def test_an_unreadable_value_fails_closed(switches: KillSwitches) -> None:
    await switches.kv.put("master", b"not json")
    await switches.kv.put("symbol.XRP-USDT", b'{"on": "yes"}')
    await switches.kv.put("surprise", b"{}")  # a foreign key is ignored
    state = await switches.state()
    assert state.master
    assert state.symbols == {"XRP/USDT"}
    assert state.reasons["master"].startswith("unreadable value")


async def test_refuses_on_without_a_reason_and_keys_that_cannot_be_switches(
    switches: KillSwitches,
) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        await switches.set("master", on=True, reason="  ", by="ops")
    with pytest.raises(ValueError, match="cannot be a subject token"):
        await switches.set("symbol", "btc.usdt", on=True, reason="x", by="ops")
    with pytest.raises(ValueError, match="must be 1-64"):
        await switches.set("strategy", "has space", on=True, reason="x", by="ops")
    assert await switches.switches() == []


def test_keys_round_trip() -> None:
    for scope, key in [
        ("master", "*"),
        ("symbol", "BTC/USDT"),
        ("strategy", "breakout"),
        ("auto", "drawdown"),
    ]:
        assert parse_switch_key(switch_key(scope, key)) == (scope, key)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a kill switch key"):
        parse_switch_key("symbols.BTC-USDT")


def test_the_changed_event_id_is_stable_per_write_and_new_per_write() -> None:
    s = Switch("symbol", "BTC/USDT", True, "delisting", "ops", AT, revision=7)
    event = changed_event(s, producer="kill-cli")
    assert event.id == changed_event(s).id
    assert event.id != changed_event(Switch("symbol", "BTC/USDT", True, "x", "ops", AT, 8)).id
    assert (event.scope, event.key, event.on, event.reason, event.by) == (
        "symbol",
        "BTC/USDT",
        True,
        "delisting",
        "ops",
    )
    assert event.ts_event == AT
