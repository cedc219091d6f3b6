"""The confirm service as a real process on real NATS JetStream and PostgreSQL.

The test plays the upstream services: it publishes 5m bar cross-sections and
candidates built by hand (event clock: the bars are of 2024, time is theirs),
registers confirm models in the real registry, and reads back the decisions on
the SIG stream and the ``confirm_windows`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import Popen
from typing import Any

import asyncpg
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from decile import codec, ids
from decile.bus import Bus
from decile.confirm import (
    FLOW_FEATURES,
    ConfirmConfig,
    ConfirmDataset,
    ConfirmModel,
    FitConfig,
    FlowBar,
    Window,
    confirm_split,
    fit_confirm,
)
from decile.confirm.export import export_confirm
from decile.events import BarBatch, CandidateSignal, ConfirmDecision, ModelActivated
from decile.reasons import ReasonCode
from decile.registry import LocalArtifacts, ModelVersion, Registry
from decile.testing.models import PERMISSIVE_GATE
from decile.testing.probes import (
    eventually,
    free_port,
    http_get,
    metric_value,
    metrics_when,
    output,
    service_process,
    stream_messages,
    wait_ready,
)
from decile_confirm.settings import ConfirmSection

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(k: int) -> datetime:
    """Open time of the ``k``-th 5m bar from T0."""
    return T0 + timedelta(minutes=5 * k)


def price(symbol: str, k: int) -> float:
    """BTC rises and ETH falls through the window; SOL drifts."""
    slope = {"BTC/USDT": 0.4, "ETH/USDT": -0.4, "SOL/USDT": 0.05}[symbol]
    return 100.0 + slope * k + 0.1 * (k % 3)


def bars(k: int, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")) -> BarBatch:
    rows = []
    for i, s in enumerate(symbols):
        c = price(s, k)
        rows.append([c - 0.05, c + 0.2, c - 0.2, c, 10.0 + (3 * k + i) % 5])
    return BarBatch(tf="5m", bar_time=at(k), symbols=symbols, values=np.array(rows),
                    producer="ingest")


def flow_bar(k: int, symbol: str) -> FlowBar:
    b = bars(k)
    values = b.values[b.symbols.index(symbol)]
    return FlowBar(int(at(k).timestamp() * 1000), *(float(v) for v in values))


def candidate(k: int = 0, symbol: str = "BTC/USDT", **over: Any) -> CandidateSignal:
    fields: dict[str, Any] = dict(
        symbol=symbol, tf="5m", bar_time=at(k), strategy="breakout", side="long",
        entry_price=price(symbol, k), atr=0.6, p_win=0.57, sl_katr=1.5, rr_target=2.0,
        offset_katr=0.0, score=0.83, rank=1, cycle_size=120, cycle_threshold=0.74,
        score_floor=0.6, model_versions={"entry": "1.0.0"}, feature_schema="fs-v1",
        producer="inference", context={"h1_trend_20": 0.3},
    )
    return CandidateSignal(**(fields | over))


def expected_flow(c: CandidateSignal, config: ConfirmConfig, ks: range) -> np.ndarray:
    """The flow row recomputed here from the bars published (``ks``), as the trainer would."""
    history = [flow_bar(k, c.symbol) for k in ks]
    window = Window.open(c, config, opened_at=at(0), history=history)
    assert window.complete
    return window.features(config, c.context.get("h1_trend_20"))


# ------------------------------------------------------------------------------ probes


async def decisions(bus: Bus) -> list[ConfirmDecision]:
    out = []
    for msg in await stream_messages(bus.js, bus.subjects.stream("SIG")):
        if (msg.headers or {}).get(codec.H_TYPE) == "ConfirmDecision" and msg.data is not None:
            event = codec.decode(msg.data, dict(msg.headers or {}), expect=ConfirmDecision)
            assert isinstance(event, ConfirmDecision)
            out.append(event)
    return out


async def decisions_for(bus: Bus, c: CandidateSignal) -> list[ConfirmDecision]:
    return [d for d in await decisions(bus) if d.candidate.id == c.id]


async def decision_for(bus: Bus, c: CandidateSignal, within: float = 20.0) -> ConfirmDecision:
    async def found() -> list[ConfirmDecision]:
        return await decisions_for(bus, c)

    found_ = await eventually(found, within=within)
    assert found_, f"no ConfirmDecision for candidate {c.id}"
    assert len(found_) == 1, found_
    return found_[0]  # type: ignore[no-any-return]


async def subject_of(bus: Bus, decision: ConfirmDecision) -> str:
    for msg in await stream_messages(bus.js, bus.subjects.stream("SIG")):
        if (msg.headers or {}).get(codec.H_MSG_ID) == decision.id:
            return str(msg.subject)
    raise AssertionError(f"decision {decision.id} not in the stream")


async def window_rows(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('confirm_windows') IS NOT NULL")
        if not exists:
            return []
        return [r["candidate_id"] for r in await conn.fetch(
            "SELECT candidate_id FROM confirm_windows ORDER BY candidate_id")]
    finally:
        await conn.close()


async def metrics_text(port: int) -> str:
    return (await asyncio.to_thread(http_get, port, "/metrics"))[1]


async def metric(port: int, name: str, **labels: str) -> float:
    return metric_value(await metrics_text(port), name, **labels)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def confirm_env(decile_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**decile_env, "DECILE_SERVICE": "confirm", "DECILE_CONFIRM__CLOCK": "event",
            "DECILE_ARTIFACTS__ROOT": str(tmp_path / "models")}


@contextlib.contextmanager
def confirm_service(env: Mapping[str, str], port: int) -> Iterator[Popen[bytes]]:
    with service_process("decile_confirm", dict(env), port) as proc:
        try:
            wait_ready(port, proc)
            yield proc
        except BaseException:
            print(output(proc)[-5000:])
            raise


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("clock", ["event", "wall"])
async def test_a_zero_bar_window_approves_at_once_without_a_model(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str, clock: str
) -> None:
    port = free_port()
    env = {**confirm_env, "DECILE_CONFIRM__WINDOW_BARS": "0", "DECILE_CONFIRM__CLOCK": clock}
    with confirm_service(env, port):
        c = candidate()
        await bus.publish(c)
        d = await decision_for(bus, c)
        assert d.id == ids.derive(c.id, "ConfirmDecision")
        assert (d.decision, d.side, d.p_confirm, d.model_version) == ("approve", "long", None, "")
        if clock == "event":
            assert d.decided_at == at(1)  # the candidate's close
        else:
            assert d.decided_at > datetime(2025, 1, 1, tzinfo=UTC)  # now, not 2024's bar
        assert d.reason is None
        assert d.flow["htf_bias_atr"] == pytest.approx(0.3 / (100 * 0.6 / price("BTC/USDT", 0)))
        assert await subject_of(bus, d) == bus.subjects.ml_confirmed("BTC/USDT")
        await metrics_when(port, "decile_confirm_unscored_total", 1, reason="no_model")
        await metrics_when(port, "decile_confirm_decisions_total", 1, decision="approve")
        assert await window_rows(pg_dsn) == []  # decided on arrival: nothing to persist


async def test_a_one_bar_window_decides_when_its_bar_arrives_on_the_real_bars_flow(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str
) -> None:
    port = free_port()
    config = ConfirmSection().config()
    with confirm_service(confirm_env, port):
        for k in range(-5, 0):
            await bus.publish(bars(k))
        c = candidate()
        await bus.publish(c)  # before the cross-section of its own bar: the known race

        async def persisted() -> bool:
            return await window_rows(pg_dsn) == [c.id]

        assert await eventually(persisted), "the open window was never persisted"
        await metrics_when(port, "decile_confirm_open_windows", 1)
        await bus.publish(bars(0))  # its own bar: baseline
        await bus.publish(bars(1))  # the window's bar
        d = await decision_for(bus, c)
        assert d.decision == "approve"
        assert d.decided_at == at(2)  # the window's end
        assert d.window_bars == 1
        assert d.fill_price_hint == pytest.approx(price("BTC/USDT", 1))
        want = expected_flow(c, config, range(-5, 2))
        assert d.flow == pytest.approx(dict(zip(FLOW_FEATURES, want.tolist(), strict=True)))
        assert d.flow["px_vs_entry_atr"] > 0  # BTC rose through the window
        assert d.flow["vol_spike_z"] != 0.0  # the baseline (own bar included) was used

        async def deleted() -> bool:
            return await window_rows(pg_dsn) == []

        assert await eventually(deleted), "the decided window's row was not deleted"
        await metrics_when(port, "decile_confirm_open_windows", 0)


async def test_a_window_whose_bar_never_comes_is_vetoed_as_stale(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str
) -> None:
    port = free_port()
    with confirm_service(confirm_env, port):
        c = candidate()
        await bus.publish(bars(0))
        await bus.publish(c)

        async def persisted() -> bool:
            return await window_rows(pg_dsn) == [c.id]

        assert await eventually(persisted)
        others = ("ETH/USDT", "SOL/USDT")
        await bus.publish(bars(1, others))  # closes 12:10; deadline 12:10 + 60 s
        await bus.publish(bars(2, others))  # closes 12:15: past the deadline
        d = await decision_for(bus, c)
        assert d.decision == "veto"
        assert d.reason is not None
        assert d.reason.code == ReasonCode.CONFIRM_STALE_WINDOW
        assert d.reason.values["bars_seen"] == 0
        assert d.decided_at == at(3)  # the cross-section that expired it
        assert await subject_of(bus, d) == bus.subjects.ml_vetoed("BTC/USDT")
        await metrics_when(port, "decile_confirm_decisions_total", 1, decision="veto",
                           code="CONFIRM_STALE_WINDOW")


async def test_an_open_window_survives_kill_9_and_is_decided_exactly_once(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str
) -> None:
    c = candidate()
    port = free_port()
    with confirm_service(confirm_env, port) as proc:
        for k in range(-3, 1):
            await bus.publish(bars(k))
        await bus.publish(c)

        async def persisted() -> bool:
            return await window_rows(pg_dsn) == [c.id]

        assert await eventually(persisted)
        proc.kill()  # SIGKILL: no shutdown hook runs
        proc.wait()
    await bus.publish(bars(1))  # the window's bar arrives while the service is down
    port = free_port()
    with confirm_service(confirm_env, port):
        d = await decision_for(bus, c)
        assert await metric(port, "decile_confirm_restored_windows") == 1
        assert (d.decision, d.decided_at) == ("approve", at(2))
        want = expected_flow(c, ConfirmSection().config(), range(-3, 2))
        assert d.flow == pytest.approx(dict(zip(FLOW_FEATURES, want.tolist(), strict=True)))

        async def deleted() -> bool:
            return await window_rows(pg_dsn) == []

        assert await eventually(deleted)
        # the candidate again under another message id: decided again, the same event,
        # dropped by the stream's dedup
        body, headers = codec.encode(c)
        await bus.js.publish(bus.subjects.ml_candidate(c.symbol), body,
                             headers={**headers, codec.H_MSG_ID: ids.new_id()})

        async def handled() -> bool:
            return await metric(port, "decile_confirm_republished_total") == 1

        assert await eventually(handled), "the repeated candidate was never handled"
        assert await metric(port, "decile_confirm_decisions_total") == 1
    assert [x.id for x in await decisions_for(bus, c)] == [d.id]


# --------------------------------------------------------------------------- the model


def synthetic_dataset(config: ConfirmConfig, n: int = 1200, seed: int = 11) -> ConfirmDataset:
    """Flow rows whose label follows ``px_vs_entry_atr`` (and noise), under ``config``."""
    rng = np.random.default_rng(seed)
    px = rng.normal(0.0, 1.0, n)
    bucket = rng.integers(0, config.buckets, n).astype(np.int64)
    x = np.column_stack([px, rng.uniform(0, 1, n), rng.normal(0, 1, n),
                         px + rng.normal(0, 0.5, n), bucket.astype(np.float64),
                         rng.normal(0, 1, n)])
    r = np.where(px + rng.normal(0.0, 0.7, n) > 0, 1.5, -1.0)
    return ConfirmDataset(
        x=x, y=(r >= 0).astype(np.int8), realised_r=r,
        ts=1_700_000_000_000 + 300_000 * np.arange(n, dtype=np.int64), atr_bucket=bucket,
        candidate_ids=tuple(f"c{i}" for i in range(n)), tf="5m", theta=0.0,
        flow_params=config.flow_params(), counts={"rows": n},
    )


async def register_confirm(
    dsn: str, root: Path, config: ConfirmConfig, *, l2: float = 1.0
) -> tuple[ConfirmModel, ModelVersion]:
    """Fit, export, upload and register a confirm version, then make it production."""
    ds = synthetic_dataset(config)
    split = confirm_split(ds)
    model = fit_confirm(ds, split, FitConfig(l2=l2))
    data, doc = export_confirm(model, ds, split, code_commit="test")
    store = LocalArtifacts(root)
    async with Registry.connect(dsn, gate=PERMISSIVE_GATE) as registry:
        production = await registry.production("confirm")
        if production is not None:  # the permissive gate lets an incomparable one through
            doc["paired"] = {"production_id": str(production.id), "comparable": False,
                             "reason": "test"}
        sha = doc["model_sha256"]
        onnx_ref = await store.put(f"confirm/{sha}/model.onnx", data)
        version = await registry.register(
            "confirm", schema_version=doc["schema_version"], metrics=doc, artifact=onnx_ref,
            artifacts={"model.onnx": onnx_ref}, data_fingerprint=doc["data_fingerprint"],
            parent_id=production.id if production else None)
        promoted = await registry.promote(version.id, "production", actor="test",
                                          skip_shadow=True)
    return model, promoted


async def test_the_production_confirm_model_scores_and_vetoes_below_its_threshold(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str
) -> None:
    config = ConfirmSection().config()
    model, version = await register_confirm(pg_dsn, Path(confirm_env["DECILE_ARTIFACTS__ROOT"]),
                                            config)
    up, down = candidate(symbol="BTC/USDT"), candidate(symbol="ETH/USDT")
    x = np.vstack([expected_flow(c, config, range(-5, 2)) for c in (up, down)])
    p_up, p_down = model.predict(x)
    assert p_up > p_down + 0.05  # the flow separates them: a threshold fits between
    cut = round((p_up + p_down) / 2, 6)
    env = {**confirm_env, "DECILE_CONFIRM__APPROVE_AT": f"[{cut}, {cut}, {cut}]",
           "DECILE_CONFIRM__INVERT_AT": "[0.0, 0.0, 0.0]"}
    port = free_port()
    with confirm_service(env, port):
        assert await metric(port, "decile_confirm_model_info", version=version.version) == 1
        for k in range(-5, 0):
            await bus.publish(bars(k))
        await bus.publish(up)
        await bus.publish(down)
        await bus.publish(bars(0))
        await bus.publish(bars(1))
        approved, vetoed = await decision_for(bus, up), await decision_for(bus, down)
        assert await metric(port, "decile_confirm_unscored_total") == 0
    assert (approved.decision, approved.model_version) == ("approve", version.version)
    assert approved.p_confirm == pytest.approx(p_up, abs=1e-6)
    assert (vetoed.decision, vetoed.model_version) == ("veto", version.version)
    assert vetoed.p_confirm == pytest.approx(p_down, abs=1e-6)
    assert vetoed.reason is not None
    assert vetoed.reason.code == ReasonCode.CONFIRM_LOW_PROBABILITY
    assert vetoed.reason.values["approve_at"] == cut
    assert await subject_of(bus, vetoed) == bus.subjects.ml_vetoed("ETH/USDT")


async def test_a_promoted_version_is_swapped_in_and_one_of_another_flow_is_refused(
    bus: Bus, confirm_env: dict[str, str], pg_dsn: str
) -> None:
    root = Path(confirm_env["DECILE_ARTIFACTS__ROOT"])
    config = ConfirmSection().config()
    _, first = await register_confirm(pg_dsn, root, config)
    env = {**confirm_env, "DECILE_CONFIRM__RECONCILE_S": "600"}  # swaps come from events
    port = free_port()
    with confirm_service(env, port):
        assert await metric(port, "decile_confirm_model_info", version=first.version) == 1
        other_flow = ConfirmConfig.fleet(window_bars=2)
        _, refused = await register_confirm(pg_dsn, root, other_flow)
        await bus.publish(activation(refused))

        async def was_refused() -> bool:
            return await metric(port, "decile_confirm_model_refused_total",
                                code="FEATURE_SCHEMA_MISMATCH") == 1

        assert await eventually(was_refused), "a model of another window was not refused"
        assert await metric(port, "decile_confirm_model_info", version=first.version) == 1
        _, second = await register_confirm(pg_dsn, root, config, l2=25.0)
        await bus.publish(activation(second))

        async def swapped() -> bool:
            return await metric(port, "decile_confirm_model_info", version=second.version) == 1

        assert await eventually(swapped), "the promoted version was never swapped in"
        for k in range(-5, 0):
            await bus.publish(bars(k))
        c = candidate()
        await bus.publish(c)
        await bus.publish(bars(0))
        await bus.publish(bars(1))
        d = await decision_for(bus, c)
    assert d.model_version == second.version
    assert d.p_confirm is not None


def activation(version: ModelVersion) -> ModelActivated:
    return ModelActivated(family="confirm", version=version.version, status="production",
                          artifact_uri=version.artifact_uri, sha256=version.sha256,
                          feature_schema=version.schema_version, producer="model-watcher")
