"""The feature service as a real process on real NATS JetStream and Redis.

Cycles come from the real ingest pipeline over the bundled Binance sample. Every
published feature row and every Redis vector must equal the offline engine's value
for that symbol and bar, and a kill -9 mid-replay must change nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal

import nats
import numpy as np
import pytest
from redis.asyncio import Redis

from decile import codec
from decile.bus import Bus, provision_streams
from decile.config import NatsSettings
from decile.events import BarBatch, FeatureBatch
from decile.features import SCHEMA, compute_offline
from decile.features.online import OnlineEngine
from decile.market import loaders
from decile.store.vectors import read_vector
from decile.subjects import Subjects
from decile.testing.probes import (
    eventually,
    free_port,
    output,
    service_process,
    stream_messages,
    wait_ready,
)
from decile_ingest.pipeline import Ingestor
from decile_ingest.sources import EVENT_TIME

START, END = "2021-02-01T00:00:00Z", "2021-02-04T00:00:00Z"  # 3 days, 20 real pairs


def cycles() -> list[BarBatch]:
    ing = Ingestor("5m", (), 0, "test")
    out: list[BarBatch] = []
    for _, cycle in loaders.iter_cycles(loaders.load_demo(start=START, end=END)):
        out += [e for e in ing.feed(cycle, EVENT_TIME).events if isinstance(e, BarBatch)]
    out += [e for e in ing.flush().events if isinstance(e, BarBatch)]
    return out


def offline_by_key() -> dict[tuple[str, int], np.ndarray]:
    feats = compute_offline(loaders.load_demo(start=START, end=END))
    names = [feats.symbols[c] for c in feats.code.tolist()]
    keys = zip(names, feats.ts.tolist(), strict=True)
    return {key: feats.values[i] for i, key in enumerate(keys)}


def same(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


async def published(js, subjects: Subjects) -> list[FeatureBatch]:  # type: ignore[no-untyped-def]
    msgs = await stream_messages(js, subjects.stream("FEAT"))
    return [codec.decode(m.data, dict(m.headers or {}), expect=FeatureBatch) for m in msgs]


async def count(bus: Bus) -> int:
    return int((await bus.js.stream_info(bus.subjects.stream("FEAT"))).state.messages)


async def publish(bus: Bus, batches: list[BarBatch]) -> None:
    for b in batches:
        await bus.publish(b)


@pytest.fixture
def feature_env(decile_env: dict[str, str]) -> dict[str, str]:
    return {**decile_env, "DECILE_SERVICE": "feature", "DECILE_FEATURE__HEALTH_WINDOW": "100"}


async def _bus(nats_url: str, namespace: str) -> tuple[nats.NATS, Bus]:
    from faststream.nats import NatsBroker

    broker = NatsBroker(nats_url)
    await broker.connect()
    bus = Bus(broker, Subjects(namespace), "test")
    await provision_streams(bus.js, bus.subjects, NatsSettings(url=nats_url, namespace=namespace))
    return broker, bus


async def test_every_feature_row_and_redis_vector_equals_the_offline_engine(
    nats_url: str, nats_namespace: str, redis_url: str, redis_prefix: str,
    feature_env: dict[str, str],
) -> None:
    batches = cycles()
    broker, bus = await _bus(nats_url, nats_namespace)
    port = free_port()
    with service_process("decile_feature", feature_env, port) as proc:
        await asyncio.to_thread(wait_ready, port, proc)
        await publish(bus, batches)

        async def all_out() -> bool:
            return await count(bus) >= len(batches)

        assert await eventually(all_out, within=240, interval=0.5)
    out = await published(bus.js, bus.subjects)
    assert len(out) == len(batches)
    want = offline_by_key()
    for fb in out:
        assert fb.feature_schema == SCHEMA.version
        assert fb.feature_names == SCHEMA.names
        ts = int(fb.bar_time.timestamp() * 1000)
        for sym, row in zip(fb.symbols, fb.features, strict=True):
            # features travel as float32: equal to the offline value on that grid (one ulp)
            assert same(row, want[(sym, ts)].astype(np.float32), rtol=2.4e-7), (sym, ts)
    redis = Redis.from_url(redis_url)
    last = out[-1]
    last_ts = int(last.bar_time.timestamp() * 1000)
    for sym in last.symbols:
        vec = await read_vector(redis, redis_prefix, sym, "5m")
        assert vec is not None
        assert vec.schema == SCHEMA.version
        assert vec.bar_time_ms == last_ts
        assert same(vec.values, want[(sym, last_ts)].astype(np.float32), rtol=0, atol=0)
    await redis.aclose()
    await broker.stop()


async def test_kill_9_mid_replay_then_restart_gives_the_uninterrupted_features(
    nats_url: str, nats_namespace: str, feature_env: dict[str, str]
) -> None:
    batches = cycles()
    # the uninterrupted run, in this process
    engine = OnlineEngine(SCHEMA)
    expected = {}
    for b in batches:
        ts = np.full(len(b.symbols), int(b.bar_time.timestamp() * 1000), dtype=np.int64)
        from decile.market.bars import Bars

        expected[b.id] = engine.update(Bars.from_ohlcv(b.symbols, ts, b.values))
    broker, bus = await _bus(nats_url, nats_namespace)
    half = len(batches) // 2
    port = free_port()
    with service_process("decile_feature", feature_env, port) as proc:
        await asyncio.to_thread(wait_ready, port, proc)
        await publish(bus, batches[:half])

        async def some() -> bool:
            return await count(bus) >= half // 2

        assert await eventually(some, within=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert await count(bus) < len(batches)
    await publish(bus, batches[half:])
    with service_process("decile_feature", feature_env, port) as proc:
        await asyncio.to_thread(wait_ready, port, proc)

        async def all_out() -> bool:
            return await count(bus) >= len(batches)

        assert await eventually(all_out, within=240, interval=0.5), output(proc)[-3000:]
    out = await published(bus.js, bus.subjects)
    assert [fb.source_id for fb in out] == [b.id for b in batches]  # once each, in order
    for fb in out:
        want = expected[fb.source_id].astype(np.float32)
        assert np.array_equal(fb.features, want, equal_nan=True)
    await broker.stop()
