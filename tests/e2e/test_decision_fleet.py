"""The whole decision chain as real processes on real NATS JetStream, PostgreSQL and Redis.

ingest replays the bundled Binance sample -> feature -> inference -> confirm -> risk ->
execution (paper broker), with the recorder writing everything down. The replay runs in
lockstep with the fleet (``DECILE_INGEST__LOCKSTEP``: each bar close once the fleet is
idle, as live bars minutes apart meet it) and the decision services judge time on event
time, so a replay's trades are reproducible to the last one.

Phases: warm-up days without lockstep (the features' 4h trend needs ~960 bars; no
complete row, so no candidate, exists before), half a day of trading, then the master
kill switch on for the positions and orders to run out (and the reference run switches
it off again to show trading resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

pytest.importorskip("onnxruntime")

from decile import codec
from decile.bus import Bus, provision_streams
from decile.config import NatsSettings
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    Event,
    Order,
    RiskDecision,
    TradeClosed,
)
from decile.killswitch import KillSwitches
from decile.registry import LocalArtifacts, Registry
from decile.settle import wait_settled
from decile.subjects import Subjects
from decile.testing.models import PERMISSIVE_GATE, promote_to, register_dir, train_tiny
from decile.testing.plugin import _pg_execute, delete_keys, delete_streams, unique_id, with_database
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

pytestmark = pytest.mark.e2e

START = "2021-02-01T00:00:00Z"
WARM_END = "2021-02-05T00:00:00Z"  # ~1,150 bars: the longest feature warm-up is ~960
TRADE_END = "2021-02-05T10:00:00Z"  # 120 cycles of trading
HALT_END = "2021-02-05T11:30:00Z"  # 18 bars, master kill on: orders expire, positions close
RESUME_END = "2021-02-05T12:30:00Z"  # reference run only: master kill off, trading resumes
BAR = timedelta(minutes=5)
START_EQUITY = 10_000.0
DECISION_SERVICES = ("confirm", "risk", "execution")
SERVICES = ("recorder", "feature", "inference", *DECISION_SERVICES)


def ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class World:
    """One isolated fleet: its NATS namespace, database, Redis prefix and artifacts."""

    nats_url: str
    namespace: str
    dsn: str
    redis_prefix: str
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Popen[bytes]] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def service_env(self, name: str) -> dict[str, str]:
        return {**self.env, "DECILE_SERVICE": name}

    def start(self, name: str) -> None:
        port = self.ports.setdefault(name, free_port())
        proc = self.stack.enter_context(
            service_process(f"decile_{name}", self.service_env(name), port))
        self.procs[name] = proc
        try:
            wait_ready(port, proc, timeout=60)
        except BaseException:
            print(output(proc)[-5000:])
            raise

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def metrics(self, name: str) -> str:
        return http_get(self.ports[name], "/metrics", timeout=5)[1]


async def connect(world: World) -> tuple[Any, Bus]:
    from faststream.nats import NatsBroker

    broker = NatsBroker(world.nats_url)
    await broker.connect()
    bus = Bus(broker, Subjects(world.namespace), "test")
    await provision_streams(bus.js, bus.subjects,
                            NatsSettings(url=world.nats_url, namespace=world.namespace))
    return broker, bus


async def last_bar_time(bus: Bus) -> datetime | None:
    try:
        msg = await bus.js.get_last_msg(bus.subjects.stream("MD"), bus.subjects.md_bars("5m"))
    except Exception:
        return None
    event = codec.decode(msg.data, dict(msg.headers or {}), expect=BarBatch)
    assert isinstance(event, BarBatch)
    return event.bar_time


async def replay(world: World, bus: Bus, end: str, *, lockstep: bool,
                 during: Any = None) -> None:
    """One ingest process replaying ``[START, end)`` (resuming after what is stored)."""
    env = {**world.service_env("ingest"), "DECILE_INGEST__SOURCE": "replay",
           "DECILE_INGEST__START": START, "DECILE_INGEST__END": end,
           "DECILE_INGEST__HIGHER": "[]", "DECILE_INGEST__LOCKSTEP": str(lockstep).lower()}
    last = ts(end) - BAR
    port = free_port()
    with service_process("decile_ingest", env, port) as proc:
        wait_ready(port, proc, timeout=60)
        if during is not None:
            await during()

        async def done() -> bool:
            assert proc.poll() is None, output(proc)[-3000:]
            return await last_bar_time(bus) == last

        assert await eventually(done, within=600, interval=0.5), output(proc)[-3000:]
    await wait_settled(bus.js, bus.subjects, timeout_s=120)


async def events(bus: Bus, stream: str, cls: type[Event]) -> list[Any]:
    out = []
    for m in await stream_messages(bus.js, bus.subjects.stream(stream)):
        if (m.headers or {}).get(codec.H_TYPE) == cls.type_name and m.data is not None:
            out.append(codec.decode(m.data, dict(m.headers or {}), expect=cls))
    return out


def key(c: CandidateSignal) -> tuple[str, str, str, str]:
    return (c.symbol, c.bar_time.isoformat(), c.strategy, c.side)


@dataclass
class Outcome:
    """What became of every candidate, and the trades, of one run."""

    fates: dict[tuple[str, str, str, str], str]
    trades: list[tuple[str, str, str, float, float]]  # key, exit reason, pnl, realised R
    equity: float
    open_positions: float
    ids_unique: bool


async def outcome(world: World, bus: Bus) -> Outcome:
    candidates = await events(bus, "SIG", CandidateSignal)
    confirms = await events(bus, "SIG", ConfirmDecision)
    decisions = await events(bus, "RISK", RiskDecision)
    orders = await events(bus, "EXEC", Order)
    closed = await events(bus, "EXEC", TradeClosed)
    every = [*candidates, *confirms, *decisions, *orders, *closed]
    by_confirm = {d.confirm.id: d for d in decisions}
    by_candidate = {c.candidate.id: c for c in confirms}
    orders_of: dict[str, list[Order]] = {}
    for o in orders:
        orders_of.setdefault(o.decision_id, []).append(o)
    closed_of = {t.decision_id: t for t in closed}
    fates: dict[tuple[str, str, str, str], str] = {}
    for c in candidates:
        confirm = by_candidate.get(c.id)
        if confirm is None:
            fates[key(c)] = "undecided"
        elif confirm.decision == "veto":
            assert confirm.reason is not None
            fates[key(c)] = f"vetoed:{confirm.reason.code.value}"
        elif (d := by_confirm.get(confirm.id)) is None:
            fates[key(c)] = "no risk decision"
        elif d.outcome == "rejected":
            assert d.rejection is not None
            fates[key(c)] = f"rejected:{d.rejection.gate}"
        else:
            statuses = sorted(o.status for o in orders_of.get(d.id, []))
            if d.id in closed_of:
                fates[key(c)] = "closed"
            elif statuses in (["accepted", "expired"], ["cancelled"]):
                fates[key(c)] = statuses[-1]
            else:
                fates[key(c)] = f"open:{statuses}"
    trade_key = {d.id: key(d.confirm.candidate) for d in decisions}
    trades = sorted((*trade_key[t.decision_id], t.exit_reason, round(t.pnl, 9),
                     round(t.realised_r, 9)) for t in closed)
    text = await asyncio.to_thread(world.metrics, "execution")
    return Outcome(
        fates=fates,
        trades=trades,  # type: ignore[arg-type]
        equity=metric_value(text, "decile_execution_equity"),
        open_positions=metric_value(text, "decile_execution_open_positions"),
        ids_unique=len({e.id for e in every}) == len(every),
    )


async def models(dsn: str, root: Path, cache: Path) -> None:
    """Tiny real models (every family) registered and promoted in this world's registry."""
    dirs = await asyncio.to_thread(train_tiny, cache)
    registry = await Registry.connect(dsn, gate=PERMISSIVE_GATE)
    try:
        store = LocalArtifacts(root)
        for family, path in dirs.items():
            version = await register_dir(registry, store, family, path)
            await promote_to(registry, version.id, "production")
    finally:
        await registry.close()


async def run(world: World, cache: Path, *, kills: bool, resume: bool) -> Outcome:
    """Warm up, trade, halt (and resume); kill -9 each decision service mid-trading."""
    await models(world.dsn, Path(world.env["DECILE_ARTIFACTS__ROOT"]), cache)
    broker, bus = await connect(world)
    switches = await KillSwitches.open(bus.js, world.namespace)
    await switches.set("master", on=False, by="test")
    try:
        with world.stack:
            for name in SERVICES:
                world.start(name)
            await replay(world, bus, WARM_END, lockstep=False)

            async def crash_and_restart() -> None:
                # each decision service dies mid-replay (SIGKILL: no clean-up of any kind)
                for i, name in enumerate(DECISION_SERVICES):
                    target = ts(WARM_END) + (20 + 30 * i) * BAR

                    async def reached(t: datetime = target) -> bool:
                        last = await last_bar_time(bus)
                        return last is not None and last >= t

                    assert await eventually(reached, within=300, interval=0.05)
                    await asyncio.to_thread(world.kill9, name)
                    await asyncio.to_thread(world.start, name)

            await replay(world, bus, TRADE_END, lockstep=True,
                         during=crash_and_restart if kills else None)
            await switches.set("master", on=True, reason="e2e: halt", by="test")
            await asyncio.sleep(0.5)  # the watchers of risk and execution see it
            await replay(world, bus, HALT_END, lockstep=True)
            result = await outcome(world, bus)
            if resume:
                await switches.set("master", on=False, by="test")
                await asyncio.sleep(0.5)
                await replay(world, bus, RESUME_END, lockstep=True)
                resumed = await events(bus, "EXEC", Order)
                result.fates["resumed-orders"] = str(sum(
                    1 for o in resumed if o.status == "accepted"
                    and o.ts_event >= ts(HALT_END)))
            return result
    finally:
        await broker.stop()


@pytest.fixture
async def second_world(nats_url: str, pg_dsn: str, redis_url: str,
                       tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    namespace, database, prefix = unique_id(), unique_id("t_"), unique_id() + ":"
    await _pg_execute(pg_dsn, f'CREATE DATABASE "{database}"')
    try:
        yield namespace, with_database(pg_dsn, database), prefix
    finally:
        await delete_streams(nats_url, namespace)
        await _pg_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        delete_keys(redis_url, prefix)


def world_env(decile_env: dict[str, str], tmp: Path, namespace: str, dsn: str,
              prefix: str) -> dict[str, str]:
    return {
        **decile_env,
        "DECILE_NATS__NAMESPACE": namespace,
        "DECILE_POSTGRES__DSN": dsn,
        "DECILE_REDIS__KEY_PREFIX": prefix,
        "DECILE_STATE_DIR": str(tmp / "state"),
        "DECILE_ARTIFACTS__ROOT": str(tmp / "models"),
        "DECILE_INFERENCE__SCORE_FLOOR": "0.0",  # more candidates: every gate gets exercised
        "DECILE_CONFIRM__CLOCK": "event",
        "DECILE_CONFIRM__WINDOW_BARS": "1",
        "DECILE_CONFIRM__WINDOW_TF": "5m",
        "DECILE_RISK__CLOCK": "event",
        # the tiny test models' p_win rarely pays real costs: risk's cost estimate is zeroed
        # so trades happen (the paper broker still charges its fees and slippage)
        "DECILE_RISK__FEE_BPS": "0",
        "DECILE_RISK__SLIPPAGE_BPS": "0",
    }


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


async def test_every_candidate_ends_once_the_ledger_reconciles_and_kill_9_changes_nothing(
    decile_env: dict[str, str], nats_url: str, nats_namespace: str, pg_dsn: str,
    redis_prefix: str, tmp_path: Path, model_cache: Path,
    second_world: tuple[str, str, str],
) -> None:
    reference = World(nats_url, nats_namespace, pg_dsn, redis_prefix,
                      world_env(decile_env, tmp_path / "a", nats_namespace, pg_dsn,
                                redis_prefix))
    ref = await run(reference, model_cache, kills=False, resume=True)
    resumed = int(ref.fates.pop("resumed-orders"))

    # every candidate ends as exactly one of: vetoed, rejected (with its gate), a closed
    # trade, an order that expired unfilled, or an order cancelled by a kill switch
    fates = Counter(f.split(":")[0] for f in ref.fates.values())
    assert set(fates) <= {"vetoed", "rejected", "closed", "expired", "cancelled"}, fates
    assert fates["closed"] >= 5, Counter(ref.fates.values())
    assert fates["rejected"] >= 1, Counter(ref.fates.values())
    assert ref.ids_unique, "an event was published twice under one id"
    # the ledger reconciles: nothing open, equity = start + sum of closed P&L
    assert ref.open_positions == 0
    assert ref.equity == pytest.approx(START_EQUITY + sum(t[5] for t in ref.trades), abs=1e-6)
    # the master kill stopped new orders from the first cycle after it went on
    halted = [f for k, f in ref.fates.items() if k[1] >= ts(TRADE_END).isoformat()]
    assert halted, "no candidate while the master kill was on"
    assert set(halted) == {"rejected:master_kill"}, Counter(halted)
    # and switching it off resumed trading
    assert resumed > 0, "no order accepted after the master kill went off"

    namespace, dsn, prefix = second_world
    crashed = World(nats_url, namespace, dsn, prefix,
                    world_env(decile_env, tmp_path / "b", namespace, dsn, prefix))
    got = await run(crashed, model_cache, kills=True, resume=False)
    assert got.ids_unique
    assert got.fates == ref.fates
    assert got.trades == ref.trades
    assert got.equity == pytest.approx(ref.equity, abs=1e-9)
