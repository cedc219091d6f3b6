"""Inference speed, each figure beside LightGBM's own predict (or the in-process compute)
measured in the same run.

1. **Single vector**: one proposal scored by the entry model: ONNX Runtime
   ``session.run`` (the serving session options: 1 thread) against
   ``lightgbm.Booster.predict`` on the same row. p50/p95 over 3,000 calls.
2. **Cross-section**: 1,200 proposals in one call, the same two engines, median.
3. **Bar close -> candidates published**, 1,200 symbols: the real feature and
   inference services as processes on NATS JetStream with a PostgreSQL registry;
   a BarBatch is published and the clock stops when the InferenceCycle of that
   bar arrives (it is published after the cycle's candidates). Cycles go one at a
   time after a warm-up longer than every feature's. Reference: the same cycle's
   compute in one process (online features + proposals + scoring + selection),
   so the ratio is what the two NATS hops and the encoding cost.

    python -m tests.bench.bench_inference [--symbols 1200] [--cycles 200]

The market for part 3 is the seeded generator (the real data has 110 pairs);
two of its symbols are named BTC/USDT and ETH/USDT because cross-asset features
need them. The model is the entry family trained on the bundled Binance sample.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import numpy as np
import onnxruntime as ort

from decile import codec
from decile.bus import Bus, provision_streams
from decile.config import NatsSettings
from decile.events import BarBatch, InferenceCycle
from decile.features import SCHEMA, OnlineEngine
from decile.market.bars import Bars
from decile.market.generator import MarketGenerator
from decile.market.loaders import demo_data_path, load_demo
from decile.registry import LocalArtifacts, Registry
from decile.serving import SERVING_FEATURES, ModelSet, load_version, score_cycle, session_options
from decile.subjects import Subjects
from decile.testing.models import PERMISSIVE_GATE
from decile.testing.plugin import delete_keys, with_database
from decile.testing.probes import free_port, service_process, wait_ready
from decile.training import build_dataset, chronological_split
from decile.training.export import to_onnx
from decile.training.models import fit_family
from decile.training.pipeline import DataSpec, TrainPlan, run_training
from tests.bench.harness import Column, Row, add_ratio, latency_summary, machine, percentile, report

ADMIN_DSN = os.environ.get("DECILE_POSTGRES__DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("DECILE_NATS__URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("DECILE_REDIS__URL", "redis://127.0.0.1:6379/0")
WARMUP_CYCLES = 1_000
IDLE_S = 0.25


def engines(n_rows: int) -> tuple[Any, ort.InferenceSession, np.ndarray]:
    ds = build_dataset(load_demo())
    sp = chronological_split(ds.ts, horizon=6, bar_ms=300_000)
    model = fit_family(ds, sp, "entry")
    sess = ort.InferenceSession(to_onnx(model), session_options(),
                                providers=["CPUExecutionProvider"])
    rows = ds.x[sp.test][:n_rows].astype(np.float32)
    return model.booster, sess, rows


def time_calls(fn: Any, n: int) -> list[int]:
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return out


def part_vectors(n_cross: int) -> list[Row]:
    booster, sess, rows = engines(max(n_cross, 3_000))
    name = sess.get_inputs()[0].name
    one = rows[:1]
    lgb_one = time_calls(lambda: booster.predict(one.astype(np.float64)), 3_000)
    ort_one = time_calls(lambda: sess.run(None, {name: one}), 3_000)
    cross = rows[:n_cross]
    lgb_cross = time_calls(lambda: booster.predict(cross.astype(np.float64)), 200)
    ort_cross = time_calls(lambda: sess.run(None, {name: cross}), 200)
    us = lambda s, q: percentile([x / 1e3 for x in s], q)  # noqa: E731
    ms = lambda s: percentile([x / 1e6 for x in s], 50)  # noqa: E731
    single = [
        Row("single vector: lightgbm predict", {"p50": us(lgb_one, 50), "p95": us(lgb_one, 95),
            "unit": "us"}, reference=True),
        Row("single vector: onnxruntime (serving session)", {"p50": us(ort_one, 50),
            "p95": us(ort_one, 95), "unit": "us"}),
    ]
    add_ratio(single, "p95", "ratio")
    cross_rows = [
        Row(f"{n_cross:,} vectors: lightgbm predict", {"p50": ms(lgb_cross), "unit": "ms"},
            reference=True),
        Row(f"{n_cross:,} vectors: onnxruntime", {"p50": ms(ort_cross), "unit": "ms"}),
    ]
    add_ratio(cross_rows, "p50", "ratio")
    return single + cross_rows


def market(n: int, cycles: int) -> list[Bars]:
    gen = MarketGenerator(n_symbols=n, seed=11)
    names = ("BTC/USDT", "ETH/USDT", *gen.symbols[2:])
    out = []
    for _ in range(cycles):
        b = gen.step()
        out.append(Bars(names, b.code, b.ts, b.open, b.high, b.low, b.close, b.volume))
    return out


def batch_of(bars: Bars) -> BarBatch:
    when = datetime.fromtimestamp(int(bars.ts[0]) / 1000, UTC)
    return BarBatch(tf="5m", bar_time=when, symbols=bars.row_names(), values=bars.ohlcv(),
                    expected=len(bars), producer="bench")


async def registry_with_entry(dsn: str, root: Path) -> ModelSet:
    registry = await Registry.connect(dsn, gate=PERMISSIVE_GATE)
    try:
        plan = TrainPlan(data=DataSpec(path=demo_data_path()), families=("entry",))
        run = await run_training(plan, registry, LocalArtifacts(root))
        version = run.results[0].version
        assert version is not None, run.results[0].failure
        await registry.promote(version.id, "production", actor="bench", skip_shadow=True)
        return ModelSet(await load_version(version, LocalArtifacts(root), SERVING_FEATURES))
    finally:
        await registry.close()


def compute_reference(cycles: list[Bars], models: ModelSet, measured: int) -> list[int]:
    """Features + scoring + selection of each measured cycle in this process."""
    engine = OnlineEngine(SCHEMA)
    samples = []
    for i, bars in enumerate(cycles):
        t = time.perf_counter_ns()
        x = engine.update(bars)
        if i >= len(cycles) - measured:
            score_cycle(x, SCHEMA.names, bars.row_names(), int(bars.ts[0]), models, floor=0.5)
            samples.append(time.perf_counter_ns() - t)
    return samples


async def end_to_end(n_symbols: int, measured: int) -> tuple[list[int], list[int], list[int]]:
    database = f"decile_bench_{uuid.uuid4().hex[:8]}"
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(ADMIN_DSN, "postgres"))
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = with_database(ADMIN_DSN, database)
    cycles = market(n_symbols, WARMUP_CYCLES + measured)
    try:
        with tempfile.TemporaryDirectory(prefix="decile-bench-") as tmp:
            models = await registry_with_entry(dsn, Path(tmp))
            reference = compute_reference(cycles, models, measured)
            env = {"DECILE_NATS__URL": NATS_URL, "DECILE_NATS__NAMESPACE": namespace,
                   "DECILE_POSTGRES__DSN": dsn, "DECILE_ARTIFACTS__ROOT": tmp,
                   "DECILE_OBS__LOG_LEVEL": "WARNING", "DECILE_INFERENCE__SCORE_FLOOR": "0.5",
                   "DECILE_FEATURE__HEALTH_WINDOW": "100000",
                   "DECILE_REDIS__URL": REDIS_URL, "DECILE_REDIS__KEY_PREFIX": f"{namespace}:",
                   "DECILE_STATE_DIR": str(Path(tmp) / "state")}
            ports = free_port(), free_port()
            with service_process("decile_feature", {**env, "DECILE_SERVICE": "feature"},
                                 ports[0]) as feat, \
                 service_process("decile_inference", {**env, "DECILE_SERVICE": "inference"},
                                 ports[1]) as inf:
                await asyncio.to_thread(wait_ready, ports[0], feat, 60)
                await asyncio.to_thread(wait_ready, ports[1], inf, 60)
                samples, feature_hop = await _drive(namespace, cycles, measured)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        delete_keys(REDIS_URL, f"{namespace}:")  # the feature service's vectors
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in await js.streams_info():
            if stream.config.name.startswith(namespace):
                await js.delete_stream(stream.config.name)
        await nc.close()
    return samples, feature_hop, reference


async def _drive(
    namespace: str, cycles: list[Bars], measured: int
) -> tuple[list[int], list[int]]:
    from faststream.nats import NatsBroker

    broker = NatsBroker(NATS_URL)
    await broker.connect()
    subjects = Subjects(namespace)
    bus = Bus(broker, subjects, "bench")
    await provision_streams(bus.js, subjects, NatsSettings(url=NATS_URL, namespace=namespace))
    nc = broker.connection
    done: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    featured: asyncio.Queue[int] = asyncio.Queue()

    async def on_cycle(msg: Any) -> None:
        event = codec.decode(msg.data, dict(msg.headers or {}), expect=InferenceCycle)
        await done.put((time.perf_counter_ns(), event.bar_time.isoformat()))

    async def on_features(msg: Any) -> None:
        await featured.put(time.perf_counter_ns())

    await nc.subscribe(subjects.ml_cycle("5m"), cb=on_cycle)
    await nc.subscribe(subjects.feat_batch("5m"), cb=on_features)
    warm = len(cycles) - measured
    for bars in cycles[:warm]:
        await bus.publish(batch_of(bars))
    for _ in range(warm):  # every warm-up cycle handled before timing starts
        await asyncio.wait_for(done.get(), 300)
        await asyncio.wait_for(featured.get(), 300)
    samples, feature_hop = [], []
    for bars in cycles[warm:]:
        # bars close 5 minutes apart: each measured cycle starts with both services idle
        # (the feature service finishes its Redis writes and acks after publishing)
        await asyncio.sleep(IDLE_S)
        event = batch_of(bars)
        t = time.perf_counter_ns()
        await bus.publish(event)
        arrived, _ = await asyncio.wait_for(done.get(), 30)
        samples.append(arrived - t)
        feature_hop.append(await asyncio.wait_for(featured.get(), 30) - t)
    await broker.stop()
    return samples, feature_hop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=1_200)
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()
    vector_rows = part_vectors(args.symbols)
    samples, feature_hop, reference = asyncio.run(end_to_end(args.symbols, args.cycles))
    e2e = [
        Row(f"in-process compute, {args.symbols:,} symbols", {
            **{k: v for k, v in latency_summary(reference).items() if k.endswith("_ms")},
            "unit": "ms"}, reference=True),
        Row("bar close -> feature batch published (feature service, NATS)", {
            **{k: v for k, v in latency_summary(feature_hop).items() if k.endswith("_ms")},
            "unit": "ms"}),
        Row("bar close -> candidates published (feature + inference services, NATS)", {
            **{k: v for k, v in latency_summary(samples).items() if k.endswith("_ms")},
            "unit": "ms"}),
    ]
    add_ratio(e2e, "p99_ms", "ratio")
    report("inference_vectors", "Inference: ONNX Runtime vs LightGBM predict (entry model)",
           vector_rows, [Column("p50", "p50"), Column("p95", "p95"), Column("unit", "unit"),
                         Column("ratio", "x lightgbm")],
           notes=["targets: single vector p95 <= 25 us; 1,200-vector cross-section median "
                  "<= 10 ms"],
           meta={"machine": machine(["onnxruntime", "lightgbm"])})
    report("inference_e2e", f"Bar close -> candidates, {args.symbols:,} symbols", e2e,
           [Column("p50_ms", "p50 ms"), Column("p90_ms", "p90 ms"), Column("p99_ms", "p99 ms"),
            Column("max_ms", "max ms"), Column("ratio", "x in-process (p99)")],
           notes=[f"{args.cycles} cycles one at a time, {IDLE_S} s apart, after "
                  f"{WARMUP_CYCLES:,} warm-up cycles",
                  "target: p99 <= 50 ms"],
           meta={"machine": machine(["nats-py", "onnxruntime"])})


if __name__ == "__main__":
    main()
