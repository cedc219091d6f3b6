"""The inference service as a real process, fed by the real feature service, on real NATS
JetStream, Redis and a PostgreSQL model registry.

Models are trained by the real pipeline (``decile train``'s code) on the first weeks of
the bundled Binance sample and promoted; bar cross-sections of later days go to the
feature service, whose batches the inference service scores. Every check recomputes
from what was published: the same feature batches, scored offline by the same model
files, must give exactly the published candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")

from decile import codec
from decile.bus import Bus, provision_streams
from decile.config import NatsSettings
from decile.events import BarBatch, CandidateSignal, FeatureBatch, InferenceCycle
from decile.market import loaders
from decile.registry import LocalArtifacts, ModelVersion, Registry
from decile.serving import SERVING_FEATURES, ModelSet, load_version, score_cycle
from decile.subjects import Subjects
from decile.testing.models import PERMISSIVE_GATE
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    metric_value,
    output,
    service_process,
    stream_messages,
    wait_ready,
)
from decile.training.pipeline import DataSpec, TrainPlan, run_training
from decile_ingest.pipeline import Ingestor
from decile_ingest.sources import EVENT_TIME

# training data ends before the replayed window; the replay starts after the features'
# longest warm-up (4h trend over 20 bars ~ 959 5m bars), so its cycles are complete rows
TRAIN_END = "2021-02-18"
REPLAY = ("2021-02-16T00:00:00Z", "2021-02-21T00:00:00Z")


def bar_batches() -> list[BarBatch]:
    ing = Ingestor("5m", (), 0, "test")
    out: list[BarBatch] = []
    for _, cycle in loaders.iter_cycles(loaders.load_demo(start=REPLAY[0], end=REPLAY[1])):
        out += [e for e in ing.feed(cycle, EVENT_TIME).events if isinstance(e, BarBatch)]
    out += [e for e in ing.flush().events if isinstance(e, BarBatch)]
    return out


async def train_and_register(dsn: str, root: Path, end: str) -> dict[str, ModelVersion]:
    registry = await Registry.connect(dsn, gate=PERMISSIVE_GATE)
    try:
        plan = TrainPlan(data=DataSpec(path=loaders.demo_data_path(), end=end), min_rows=500)
        run = await run_training(plan, registry, LocalArtifacts(root))
        assert run.ok, [r.failure for r in run.results]
        return {r.family: r.version for r in run.results if r.version}
    finally:
        await registry.close()


async def promote_all(dsn: str, versions: dict[str, ModelVersion]) -> None:
    registry = await Registry.connect(dsn, gate=PERMISSIVE_GATE)
    try:
        for v in versions.values():
            await registry.promote(v.id, "production", actor="test", skip_shadow=True)
    finally:
        await registry.close()


@pytest.fixture
def inference_env(decile_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**decile_env, "DECILE_ARTIFACTS__ROOT": str(tmp_path / "models"),
            "DECILE_INFERENCE__SCORE_FLOOR": "0.0", "DECILE_INFERENCE__RECONCILE_S": "1"}


async def connect_bus(nats_url: str, namespace: str) -> Any:
    from faststream.nats import NatsBroker

    broker = NatsBroker(nats_url)
    await broker.connect()
    bus = Bus(broker, Subjects(namespace), "test")
    await provision_streams(bus.js, bus.subjects, NatsSettings(url=nats_url, namespace=namespace))
    return broker, bus


async def read(bus: Bus, stream: str, cls: type[Any]) -> list[Any]:
    msgs = await stream_messages(bus.js, bus.subjects.stream(stream))
    out = []
    for m in msgs:
        if (m.headers or {}).get("Decile-Type") == cls.type_name:
            out.append(codec.decode(m.data, dict(m.headers or {}), expect=cls))
    return out


async def served(root: Path, versions: dict[str, ModelVersion]) -> ModelSet:
    """The same model files the service loads, loaded here."""
    store = LocalArtifacts(root)
    loaded = {f: await load_version(v, store, SERVING_FEATURES) for f, v in versions.items()}
    return ModelSet(loaded["entry"], loaded.get("risk"), loaded.get("rr"), loaded.get("offset"))


def offline_selection(
    models: ModelSet, batch: FeatureBatch, floor: float
) -> tuple[set[tuple[str, str, str]], int]:
    """What the cycle should publish, recomputed here, and how many proposals it had."""
    scores = score_cycle(batch.features, batch.feature_names, batch.symbols, batch.bar_time,
                         models, floor=floor, schema_version=batch.feature_schema)
    return {(s.symbol, s.strategy, s.side) for s in scores.selected()}, len(scores)


async def test_every_cycle_publishes_exactly_its_offline_top_decile_above_the_floor(
    nats_url: str, nats_namespace: str, pg_dsn: str, inference_env: dict[str, str]
) -> None:
    """ingest (replaying the bundled file) -> feature -> inference, three real processes."""
    root = Path(inference_env["DECILE_ARTIFACTS__ROOT"])
    versions = await train_and_register(pg_dsn, root, TRAIN_END)
    await promote_all(pg_dsn, versions)
    floor = versions["entry"].metrics["metrics"]["score_floor"]  # the service's default
    env = {k: v for k, v in inference_env.items() if k != "DECILE_INFERENCE__SCORE_FLOOR"}
    ingest_env = {**env, "DECILE_SERVICE": "ingest", "DECILE_INGEST__SOURCE": "replay",
                  "DECILE_INGEST__START": REPLAY[0], "DECILE_INGEST__END": REPLAY[1]}
    broker, bus = await connect_bus(nats_url, nats_namespace)
    ports = free_port(), free_port(), free_port()
    with contextlib.ExitStack() as stack:
        feature = stack.enter_context(service_process(
            "decile_feature", {**env, "DECILE_SERVICE": "feature"}, ports[0]))
        inference = stack.enter_context(service_process(
            "decile_inference", {**env, "DECILE_SERVICE": "inference"}, ports[1]))
        await asyncio.to_thread(wait_ready, ports[0], feature)
        await asyncio.to_thread(wait_ready, ports[1], inference)
        ingest = stack.enter_context(service_process("decile_ingest", ingest_env, ports[2]))
        expected = len(bar_batches())  # the 5m cycles the replay publishes

        async def all_scored() -> bool:
            return len(await read(bus, "SIG", InferenceCycle)) >= expected

        assert await eventually(all_scored, within=300, interval=1.0), \
            output(inference)[-2000:] + output(ingest)[-2000:]
    features = await read(bus, "FEAT", FeatureBatch)
    cycles = await read(bus, "SIG", InferenceCycle)
    candidates = await read(bus, "SIG", CandidateSignal)
    await broker.stop()
    assert len(features) == expected
    assert sorted(c.source_id for c in cycles) == sorted(f.id for f in features)  # one each
    assert all(c.skipped is None for c in cycles), Counter(
        c.skipped.code for c in cycles if c.skipped)
    by_batch: dict[str, set[tuple[str, str, str]]] = {}
    for c in candidates:
        by_batch.setdefault(c.source_id, set()).add((c.symbol, c.strategy, c.side))
        assert c.model_versions == {f: v.version for f, v in versions.items()}
        assert c.p_win >= floor
        assert c.rank <= math.ceil(0.1 * c.cycle_size)
    models = await served(root, versions)
    selected, floored = 0, 0
    for fb in features:
        want, proposals = offline_selection(models, fb, floor)
        assert by_batch.get(fb.id, set()) == want, fb.bar_time
        selected += bool(want)
        floored += bool(proposals) and not want  # proposals, none good enough
    assert selected >= 10  # the comparison is not vacuous
    assert floored >= 10  # and the floor really bites
    kept = {c.source_id: c.kept for c in cycles}
    assert all(kept[fid] == len(s) for fid, s in by_batch.items())


async def train_entry(dsn: str, root: Path, end: str) -> ModelVersion:
    registry = await Registry.connect(dsn, gate=PERMISSIVE_GATE)
    try:
        plan = TrainPlan(data=DataSpec(path=loaders.demo_data_path(), end=end),
                         families=("entry",), min_rows=500)
        run = await run_training(plan, registry, LocalArtifacts(root))
        version = run.results[0].version
        assert version is not None, run.results[0].failure
        return version
    finally:
        await registry.close()


async def replay_with_a_promotion(
    nats_url: str, namespace: str, env: dict[str, str], promote: Any, *, watcher: bool = False
) -> tuple[list[InferenceCycle], list[CandidateSignal], str]:
    """Replay half the bars, run ``promote()``, wait until the inference service has
    handled the new version (swapped or refused), replay the rest; returns the cycles (in
    bar order), candidates and the service's metrics. With ``watcher`` the model-watcher
    runs too and the registry re-read is slowed to 10 minutes: the swap must come from
    its ``model.activated``."""
    batches = bar_batches()
    half = len(batches) // 2
    broker, bus = await connect_bus(nats_url, namespace)
    ports = free_port(), free_port(), free_port()
    inference_env = {**env, "DECILE_SERVICE": "inference"}
    if watcher:
        inference_env["DECILE_INFERENCE__RECONCILE_S"] = "600"
    with contextlib.ExitStack() as stack:
        feat = stack.enter_context(service_process(
            "decile_feature", {**env, "DECILE_SERVICE": "feature"}, ports[0]))
        inference = stack.enter_context(service_process(
            "decile_inference", inference_env, ports[1]))
        procs = [(ports[0], feat), (ports[1], inference)]
        if watcher:
            procs.append((ports[2], stack.enter_context(service_process(
                "decile_model_watcher", {**env, "DECILE_SERVICE": "model-watcher"}, ports[2]))))
        for port, proc in procs:
            await asyncio.to_thread(wait_ready, port, proc)

        def scored(n: int) -> Any:
            async def check() -> bool:
                return len(await read(bus, "SIG", InferenceCycle)) >= n
            return check

        async def handled() -> bool:
            _, text = await asyncio.to_thread(http_get, ports[1], "/metrics")
            events = metric_value(text, "decile_inference_model_swaps_total", family="entry")
            events += metric_value(text, "decile_inference_model_refused_total", family="entry")
            return events >= 2  # the first version at start, then the promoted one

        for b in batches[:half]:
            await bus.publish(b)
        assert await eventually(scored(half // 2), within=240, interval=0.5), \
            output(inference)[-3000:]
        await promote()
        assert await eventually(handled, within=60, interval=0.2), output(inference)[-3000:]
        for b in batches[half:]:
            await bus.publish(b)
        assert await eventually(scored(len(batches)), within=240, interval=0.5), \
            output(inference)[-3000:]
        _, text = await asyncio.to_thread(http_get, ports[1], "/metrics")
    cycles = sorted(await read(bus, "SIG", InferenceCycle), key=lambda c: c.bar_time)
    candidates = await read(bus, "SIG", CandidateSignal)
    await broker.stop()
    assert len(cycles) == len(batches)  # none lost
    assert len({c.source_id for c in cycles}) == len(batches)  # none twice
    return cycles, candidates, text


async def test_a_promotion_mid_replay_switches_versions_between_cycles(
    nats_url: str, nats_namespace: str, pg_dsn: str, inference_env: dict[str, str]
) -> None:
    root = Path(inference_env["DECILE_ARTIFACTS__ROOT"])
    v1 = await train_entry(pg_dsn, root, "2021-02-10")
    await promote_all(pg_dsn, {"entry": v1})
    v2 = await train_entry(pg_dsn, root, "2021-02-18")  # paired against v1: promotable

    async def promote() -> None:
        await promote_all(pg_dsn, {"entry": v2})

    cycles, candidates, _ = await replay_with_a_promotion(
        nats_url, nats_namespace, inference_env, promote, watcher=True)
    served = [c.model_versions["entry"] for c in cycles]
    switch = served.index(v2.version)
    assert 0 < switch < len(served)
    assert served == [v1.version] * switch + [v2.version] * (len(served) - switch)
    by_cycle = {c.source_id: c.model_versions for c in cycles}
    assert candidates
    assert all(s.model_versions == by_cycle[s.source_id] for s in candidates)  # one set each


async def test_a_corrupt_promoted_artifact_is_refused_and_the_old_version_keeps_serving(
    nats_url: str, nats_namespace: str, pg_dsn: str, inference_env: dict[str, str]
) -> None:
    root = Path(inference_env["DECILE_ARTIFACTS__ROOT"])
    v1 = await train_entry(pg_dsn, root, "2021-02-10")
    await promote_all(pg_dsn, {"entry": v1})
    v2 = await train_entry(pg_dsn, root, "2021-02-18")
    onnx = Path(v2.artifact_uri.removeprefix("file://"))

    async def promote() -> None:
        data = await asyncio.to_thread(onnx.read_bytes)
        await asyncio.to_thread(onnx.write_bytes, data[: len(data) // 2])  # truncated on disk
        await promote_all(pg_dsn, {"entry": v2})

    cycles, _, metrics_text = await replay_with_a_promotion(
        nats_url, nats_namespace, inference_env, promote)
    assert {c.model_versions["entry"] for c in cycles} == {v1.version}
    assert all(c.skipped is None for c in cycles)
    assert metric_value(metrics_text, "decile_inference_model_refused_total", family="entry",
                        code="MODEL_SHA_MISMATCH") >= 1
