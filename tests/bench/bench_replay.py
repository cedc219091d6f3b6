"""Replay throughput: bars/s into JetStream (ingest) and bars/s stored (recorder).

Reference in the same run: a raw nats-py ``publish_async`` of the very bytes the
ingest pipeline produced (no quality check, assembly, resampling or encoding),
so the ratio says what the pipeline costs on top of the wire.

Also verifies the acceptance check of the market-data issue: the recorder stores
exactly the file's rows (count and a checksum over the values).

    python -m tests.bench.bench_replay [--data PATH] [--end 2021-01-01]
Default data: ../shared/data/binance-spot-5m-nfi (110 pairs, 3.5M bars) when present,
else the bundled 20-pair sample.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import nats

from decile import codec, servers
from decile.bus import provision_streams
from decile.market import loaders
from decile.market.bars import Bars
from decile.service import create_runtime
from decile.subjects import STREAMS, Subjects
from decile.testing.probes import (
    checksum_bars,
    eventually,
    free_port,
    http_get,
    metric_value,
    stored_bars,
    wait_ready,
)
from decile_ingest.pipeline import Ingestor
from decile_ingest.pump import Pump
from decile_ingest.settings import IngestSettings
from decile_ingest.sources import EVENT_TIME, Chunk
from tests.bench.harness import Column, Row, add_ratio, machine, report

SHARED = Path(__file__).resolve().parents[2].parent / "shared/data/binance-spot-5m-nfi"


class Preloaded:
    """The replay source after its file load, so load time is reported on its own."""

    name = "bench"

    def __init__(self, bars: Bars) -> None:
        self.bars = bars

    async def chunks(self, since_ms: int | None) -> AsyncIterator[Chunk]:
        for i, (_, cycle) in enumerate(loaders.iter_cycles(self.bars)):
            yield Chunk(cycle, EVENT_TIME)
            if i % 64 == 0:
                await asyncio.sleep(0)


async def _drop_streams(url: str, subjects: Subjects) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in STREAMS:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(subjects.stream(name))
    await nc.close()


async def raw_publish(url: str, bodies: list[tuple[str, bytes, dict[str, str]]]) -> float:
    """Seconds to publish pre-encoded bodies with acks, pipelined like the pump."""
    subjects = Subjects("rawbench" + os.urandom(3).hex())
    nc = await nats.connect(url)
    js = nc.jetstream()
    from decile.config import NatsSettings

    await provision_streams(js, subjects, NatsSettings(url=url, namespace=subjects.namespace))
    inflight: list[Any] = []
    start = time.perf_counter()
    for subject, body, headers in bodies:
        subject = f"{subjects.namespace}.{subject}"
        inflight.append(await js.publish_async(subject, body, headers=headers))
        if len(inflight) >= 512:
            await inflight.pop(0)
    await asyncio.gather(*inflight)
    took = time.perf_counter() - start
    await nc.close()
    await _drop_streams(url, subjects)
    return took


async def run(path: Path, start: str | None, end: str | None) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="decile-bench-"))
    nats_ep = servers.ensure_nats(os.environ.get("DECILE_NATS__URL"), state)
    pg_ep = servers.ensure_postgres(os.environ.get("DECILE_POSTGRES__DSN"), state)
    result: dict[str, Any] = {"data": str(path)}
    t = time.perf_counter()
    bars = loaders.read_bars(path, start=start, end=end)
    result["load_s"] = time.perf_counter() - t
    result["bars"] = len(bars)
    want = (len(bars), checksum_bars(list(bars.symbol), bars.ts, bars.ohlcv()))

    # the bytes ingest would publish (for the raw reference)
    ing = Ingestor("5m", ("15m", "1h", "4h"), 0, "bench")
    bodies = []
    all_rows = 0  # every timeframe: what the recorder will have stored when done
    for _, cycle in loaders.iter_cycles(bars):
        for ev in ing.feed(cycle, EVENT_TIME).events:
            all_rows += len(getattr(ev, "symbols", ()))
            body, headers = codec.encode(ev)
            from decile.bus import subject_for

            bodies.append((subject_for(ev, Subjects()), body, headers))
    result["messages"] = len(bodies)
    result["rows_all"] = all_rows
    result["raw_s"] = await raw_publish(nats_ep.url, bodies)

    ns = "bench" + os.urandom(3).hex()
    settings = IngestSettings(nats={"url": nats_ep.url, "namespace": ns},
                              obs={"http_port": 0, "log_level": "WARNING"})
    rt = create_runtime(settings)
    await rt.broker.connect()
    await provision_streams(rt.bus.js, rt.subjects, settings.nats)
    t = time.perf_counter()
    await Pump(rt.bus, Preloaded(bars), settings.ingest).run()
    result["ingest_s"] = time.perf_counter() - t
    await rt.broker.stop()

    # recorder: drain the stored MD stream into a fresh database
    db = "bench_" + os.urandom(4).hex()
    admin = pg_ep.url
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    dsn = admin.rsplit("/", 1)[0] + "/" + db
    port = free_port()
    env = {**os.environ, "DECILE_NATS__URL": nats_ep.url, "DECILE_NATS__NAMESPACE": ns,
           "DECILE_POSTGRES__DSN": dsn, "DECILE_SERVICE": "recorder",
           "DECILE_OBS__HTTP_PORT": str(port), "DECILE_OBS__LOG_LEVEL": "WARNING",
           "DECILE_RECORDER__BATCH_SIZE": "512"}
    proc = subprocess.Popen([sys.executable, "-m", "decile_recorder"], env=env)  # noqa: ASYNC220
    try:
        await asyncio.to_thread(wait_ready, port, None, 60)
        t = time.perf_counter()
        # poll the recorder's own counter: count(*) on a growing table would load PostgreSQL
        await eventually(
            lambda: asyncio.to_thread(
                lambda: metric_value(http_get(port, "/metrics")[1], "decile_recorder_rows_total")
                >= all_rows
            ),
            within=3600,
            interval=0.2,
        )
        result["record_s"] = time.perf_counter() - t
        await asyncio.sleep(1.0)
        result["stored_match"] = await stored_bars(dsn) == want
    finally:
        proc.terminate()
        proc.wait(30)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()
        await _drop_streams(nats_ep.url, Subjects(ns))
        nats_ep.stop()
        pg_ep.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else None)
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()
    path = args.data or loaders.demo_data_path()
    r = asyncio.run(run(path, args.start, args.end))
    n = r["bars"]
    rows = [
        Row("raw nats-py publish_async of the same bytes", {"bars_s": n / r["raw_s"],
            "seconds": r["raw_s"]}, reference=True),
        Row("ingest pipeline -> JetStream (quality, assembly, 15m/1h/4h, encode)",
            {"bars_s": n / r["ingest_s"], "seconds": r["ingest_s"]}),
        Row("recorder JetStream -> PostgreSQL (COPY, idempotent upsert), all timeframes",
            {"bars_s": r["rows_all"] / r["record_s"], "seconds": r["record_s"]}),
    ]
    add_ratio(rows, "bars_s", "ratio")
    report("replay", f"Replay throughput: {n:,} bars from {Path(r['data']).name}", rows,
           [Column("bars_s", "bars/s", "{:,.0f}"), Column("seconds", "s"),
            Column("ratio", "x raw")],
           notes=[f"file load and sort: {r['load_s']:.2f} s (not in the figures)",
                  f"{r['messages']:,} messages incl. higher timeframes",
                  f"stored rows equal the file's (count and checksum): {r['stored_match']}",
                  "targets on 2 cores: >= 100,000 bars/s published, >= 50,000 bars/s stored"],
           meta={"machine": machine(["nats-py", "asyncpg", "pyarrow"])})
    if not r["stored_match"]:
        raise SystemExit("stored rows differ from the file")


if __name__ == "__main__":
    main()
