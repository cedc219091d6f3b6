"""The recorder as a real process against real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
import numpy as np

from decile import codec
from decile.bus import provision_streams
from decile.config import NatsSettings
from decile.events import BarBatch, QuarantinedBar
from decile.reasons import ReasonCode
from decile.subjects import Subjects
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    metric_value,
    service_process,
    stream_messages,
    wait_ready,
)

T0 = datetime(2021, 2, 1, tzinfo=UTC)


def batch(i: int, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")) -> BarBatch:
    base = np.array([[100.0, 110.0, 90.0, 105.0, 12.5]] * len(symbols)) * (1 + i / 100)
    return BarBatch(tf="5m", bar_time=T0 + timedelta(minutes=5 * i), symbols=symbols, values=base)


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_recorder_stores_bars_once_and_dead_letters_malformed_messages(
    nats_url: str, nats_namespace: str, pg_dsn: str, decile_env: dict[str, str]
) -> None:
    port = free_port()
    subjects = Subjects(nats_namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision_streams(js, subjects, NatsSettings(url=nats_url, namespace=nats_namespace))
    with service_process(
        "decile_recorder", {**decile_env, "DECILE_SERVICE": "recorder"}, port
    ) as p:
        await asyncio.to_thread(wait_ready, port, p)
        for path in ("/healthz", "/readyz", "/metrics"):
            status, _ = http_get(port, path)
            assert status == 200, path

        batches = [batch(i) for i in range(20)]
        for b in batches:
            body, headers = codec.encode(b)
            await js.publish(subjects.md_bars("5m"), body, headers=headers)
        # a replayed cycle with a new id: stored rows must not double
        again = batch(3).model_copy(update={"id": batch(0).id.replace(batch(0).id[-4:], "ffff")})
        body, headers = codec.encode(again)
        await js.publish(subjects.md_bars("5m"), body, headers=headers)
        await js.publish(
            subjects.md_quarantine("NON_FINITE"),
            QuarantinedBar(code=ReasonCode.NON_FINITE, symbol="X", tf="5m")
            .model_dump_json()
            .encode(),
        )

        # malformed: NaN price inside an otherwise valid Arrow cross-section, and bad JSON
        bad = batch(99)
        body, headers = codec.encode(bad)
        poisoned = body.replace(np.float64(105.0 * 1.99).tobytes(), np.float64(math.nan).tobytes())
        assert poisoned != body
        await js.publish(subjects.md_bars("5m"), poisoned, headers=headers)
        await js.publish(subjects.md_quarantine("X"), b"\x00garbage")

        async def stored() -> bool:
            return (
                await _count(pg_dsn, "SELECT count(*) FROM bars") == 40
                and await _count(pg_dsn, "SELECT count(*) FROM events") == 3
            )

        assert await eventually(stored, within=30)
        letters = await stream_messages(js, subjects.stream("DLQ"), subjects.dlq("recorder"))
        codes = sorted(json.loads(m.data)["code"] for m in letters)
        assert codes == ["DECODE_ERROR", "VALIDATION_ERROR"]
        _, text = http_get(port, "/metrics")
        assert metric_value(text, "decile_dead_letters_total", service="recorder") == 2
        assert metric_value(text, "decile_recorder_rows_total", table="bars") == 40

        # still serving after the poison
        body, headers = codec.encode(batch(50))
        await js.publish(subjects.md_bars("5m"), body, headers=headers)

        async def one_more() -> bool:
            return await _count(pg_dsn, "SELECT count(*) FROM bars") == 42

        assert await eventually(one_more)
    await nc.close()
