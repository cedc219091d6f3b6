"""A three-server NATS cluster with the fleet's streams at replicas 3 survives losing a server.

Three local nats-server processes (routes on loopback, JetStream, free ports,
their own temp dirs) form a cluster; decile.bus provisions the streams with
``NatsSettings(stream_replicas=3)``. A publisher sends a run of events through
:class:`decile.bus.Bus` and the server it is connected to is killed (SIGKILL)
half-way; it is also the MD stream's leader (the publisher lists the leader
first), so both the client's reconnect and the stream's leader election are
exercised. nats-py reconnects to a remaining server, a publish that failed is
retried with the same event (same ``Nats-Msg-Id``), and at the end a consumer
reading the stream finds every event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from nats.js import JetStreamContext
from ops_nats import NatsProc, nats_proc

from decile.bus import Bus, make_broker, provision_streams
from decile.config import NatsSettings
from decile.events import QuarantinedBar
from decile.reasons import ReasonCode
from decile.subjects import Subjects

EVENTS = 300
KILL_AT = EVENTS // 2
SUBJECTS = Subjects()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsProc]]:
    procs = [nats_proc(tmp_path, f"n{i}") for i in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p.cluster_port}" for p in procs)
    for p in procs:
        p.args += ["--cluster_name", "decile", "--cluster", f"nats://127.0.0.1:{p.cluster_port}",
                   "--routes", routes]
    try:
        for p in procs:
            p.start(wait=False)
        for p in procs:
            p.wait_healthy(30)
        _wait_for_meta_leader(procs, within=30)
        yield procs
    finally:
        for p in procs:
            p.stop()


def _wait_for_meta_leader(procs: list[NatsProc], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{procs[0].http_port}/jsz"
            with urllib.request.urlopen(url, timeout=1) as r:
                meta = json.load(r).get("meta_cluster") or {}
            if meta.get("leader") and len(meta.get("replicas") or []) == len(procs) - 1:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("JetStream meta leader not elected: " + procs[0].tail())


T = TypeVar("T")
SETTLING = (nats.errors.TimeoutError, TimeoutError, nats.js.errors.ServiceUnavailableError)


async def settled(call: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """Run a JetStream admin request, waiting out timeouts and 503s.

    A cluster that just elected its meta leader (on a loaded 2-core CI box) may time
    out a stream-info or create request now and then; that is the cluster settling,
    not the behaviour under test, so it is retried within a bound.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except SETTLING:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def quarantined(i: int) -> QuarantinedBar:
    return QuarantinedBar(code=ReasonCode.NON_FINITE, symbol="BTC/USDT", tf="5m",
                          values={"close": "nan", "n": i})


async def publish_until_stored(bus: Bus, event: QuarantinedBar, within: float = 45.0) -> int:
    """Publish, retrying the same event while the cluster fails over; returns the retries."""
    deadline = time.monotonic() + within
    retries = 0
    while True:
        try:
            await bus.publish(event)
            return retries
        except Exception:
            retries += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def read_ids(js: JetStreamContext, expected: int, within: float = 45.0) -> list[str]:
    """Every Nats-Msg-Id in MD through a durable pull consumer, acking as it goes.

    A cluster that just lost a server (maybe its meta leader too) may time out creating
    the consumer, or answer 503 until the consumer's own leader is elected: both are
    waited out, bounded.
    """
    deadline = time.monotonic() + within
    sub = await settled(lambda: js.pull_subscribe("md.quarantine.>", durable="check", stream="MD"),
                        within)
    ids: list[str] = []
    empty = 0
    while time.monotonic() < deadline and empty < 2:
        try:
            batch = await sub.fetch(100, timeout=2)
        except (nats.errors.TimeoutError, TimeoutError):
            empty += 1 if len(ids) >= expected else 0
            continue
        except nats.js.errors.ServiceUnavailableError:
            await asyncio.sleep(0.5)
            continue
        for msg in batch:
            ids.append(msg.headers["Nats-Msg-Id"])
            await msg.ack()
    return ids


async def test_events_are_stored_exactly_once_when_a_server_dies_mid_stream(
    cluster: list[NatsProc],
) -> None:
    settings = NatsSettings(url=",".join(p.url for p in cluster), stream_replicas=3,
                            reconnect_wait_s=0.5, connect_timeout_s=2)
    setup = await nats.connect(settings.url.split(","))
    js = setup.jetstream(timeout=10)
    await settled(lambda: provision_streams(js, SUBJECTS, settings))
    info = await settled(lambda: js.stream_info("MD"))
    await setup.close()
    assert info.config.num_replicas == 3
    assert len(info.cluster.replicas or []) == 2
    leader = next(p for p in cluster if p.name == info.cluster.leader)
    ordered = [leader, *(p for p in cluster if p is not leader)]
    settings = settings.model_copy(update={"url": ",".join(p.url for p in ordered)})
    broker = make_broker(settings, "ingest", dont_randomize=True)
    await broker.connect()
    bus = Bus(broker, SUBJECTS, "ingest")
    await settled(lambda: provision_streams(bus.js, SUBJECTS, settings))  # same config: no-op
    assert broker.connection.connected_url.port == leader.port

    events = [quarantined(i) for i in range(EVENTS)]
    retries, killed = 0, None
    for i, event in enumerate(events):
        if i == KILL_AT:
            port = broker.connection.connected_url.port
            killed = next(p for p in cluster if p.port == port)
            killed.kill()
        retries += await publish_until_stored(bus, event)
    assert killed is not None
    assert broker.connection.is_connected
    assert broker.connection.connected_url.port != killed.port  # reconnected elsewhere
    await broker.stop()

    survivor = next(p for p in cluster if p is not killed)
    nc = await nats.connect(survivor.url)
    ids = await read_ids(nc.jetstream(timeout=10), expected=EVENTS)
    await nc.close()
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates"
    assert set(ids) == {e.id for e in events}, f"missing {len({e.id for e in events} - set(ids))}"
    assert killed is leader
    print(f"killed {killed.name} (MD leader) at event {KILL_AT}; {retries} publish retries")
