"""Decisions: candidate -> paper fill over JetStream (confirm, risk, execution as real
processes, zero confirm window), per stage, and risk decisions per second.

References measured in the same run: one JetStream hop (publish, stored, received by a
subscriber in this process) for the latencies; the risk gates and sizing in one process
(no bus, no audit) for the decision rate.

``python -m tests.bench.bench_decisions [--candidates N] [--burst N]``; needs NATS,
PostgreSQL (the servers `make test` uses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import numpy as np

from decile import codec
from decile.bus import Bus
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    ModelActivated,
)
from decile.killswitch import KillSwitches
from decile.risk import CandidateContext, KillState, RiskConfig, decision_event, evaluate
from decile.risk.book import BookState
from decile.testing.plugin import with_database
from decile.testing.probes import (
    free_port,
    last_closed_bar,
    provisioned_bus,
    service_process,
    wait_ready,
)
from tests.bench.harness import Column, Row, add_ratio, latency_summary, machine, report

NATS_URL = os.environ.get("DECILE_NATS__URL", "nats://127.0.0.1:4222")
ADMIN_DSN = os.environ.get("DECILE_POSTGRES__DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BAR = timedelta(minutes=5)
SYMBOLS = tuple(f"S{i:03d}/USDT" for i in range(200))
IDLE_S = 0.05  # candidates arrive a few per bar close, never in a queue
PER_BAR = 5


def bars(bar_time: datetime, symbols: tuple[str, ...] = SYMBOLS) -> BarBatch:
    row = [100.0, 101.0, 99.0, 100.5, 10.0]
    return BarBatch(tf="5m", bar_time=bar_time, symbols=symbols,
                    values=np.array([row] * len(symbols)), producer="ingest")


def candidate(symbol: str, bar_time: datetime) -> CandidateSignal:
    return CandidateSignal(
        symbol=symbol, tf="5m", bar_time=bar_time, strategy="breakout", side="long",
        entry_price=100.5, atr=1.2, p_win=0.57, sl_katr=1.5, rr_target=2.0, offset_katr=0.0,
        score=0.83, rank=1, cycle_size=120, cycle_threshold=0.74, score_floor=0.6,
        model_versions={"entry": "1.0.0"}, feature_schema="fs-v1", producer="inference")


def gates_reference(n: int) -> tuple[float, int]:
    """Risk decisions per second in one process: context, book, 14 gates, sizing, event."""
    now = datetime.now(UTC)
    bar = last_closed_bar(now)
    config = RiskConfig()
    book = BookState(equity=10_000.0, start_of_day_equity=10_000.0, peak_equity=10_000.0,
                     last_bar_time=dict.fromkeys(SYMBOLS, bar), model_age_s=60.0,
                     kill=KillState())
    confirms = [ConfirmDecision(trace_id=c.trace_id, candidate=c, decision="approve",
                                side="long", decided_at=now, producer="confirm")
                for c in (candidate(SYMBOLS[i % len(SYMBOLS)], bar) for i in range(n))]
    approved = 0
    start = time.perf_counter()
    for confirm in confirms:
        verdict = evaluate(CandidateContext.from_confirm(confirm, now), book, config)
        approved += decision_event(confirm, verdict, producer="risk").outcome == "approved"
    return n / (time.perf_counter() - start), approved


async def hop_reference(bus: Bus, nc: Any, n: int) -> list[int]:
    """One JetStream hop: publish (stored, acked) -> a core subscriber here receives it."""
    got: asyncio.Queue[int] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        await got.put(time.perf_counter_ns())

    sub = await nc.subscribe(bus.subjects.all("ml", "candidate"), cb=on_msg)
    samples = []
    bar = last_closed_bar(datetime.now(UTC))
    for i in range(n):
        await asyncio.sleep(IDLE_S)
        event = candidate(SYMBOLS[i % len(SYMBOLS)], bar)
        t = time.perf_counter_ns()
        await bus.publish(event)
        samples.append(await asyncio.wait_for(got.get(), 10) - t)
    await sub.unsubscribe()
    return samples


STAGES = (("ml", "candidate"), ("ml", "confirmed"), ("risk", "approved"), ("exec", "order"),
          ("exec", "fill"))


async def chain(bus: Bus, nc: Any, n: int, bar: datetime) -> tuple[dict[str, list[int]], datetime]:
    """Per bar: its cross-section, then ``PER_BAR`` candidates of that bar one at a time,
    each timed from its publish to its paper entry fill (a market order fills as it
    arrives), with the time each stage's event reached a subscriber here.

    ``bar``: the first bar to publish; returns the samples per stage (ns after the
    candidate's publish) and the next bar. The decision services run on the event clock,
    so bars can follow each other faster than five minutes.
    """
    seen: dict[str, dict[str, int]] = {}  # trace id -> stage -> arrival
    done: asyncio.Queue[str] = asyncio.Queue()
    refused: list[str] = []

    async def on_msg(msg: Any) -> None:
        # headers only: decoding every event here would take CPU from the services timed
        at = time.perf_counter_ns()
        stage = ".".join(msg.subject.split(".")[1:3])
        trace = (msg.headers or {}).get(codec.H_TRACE, "")
        seen.setdefault(trace, {}).setdefault(stage, at)  # an exit fill comes later
        if stage == "exec.fill":
            await done.put(trace)
        elif stage in ("risk.rejected", "ml.vetoed"):
            event = codec.decode(msg.data, dict(msg.headers or {}))
            reason = getattr(event, "rejection", None) or getattr(event, "reason", None)
            refused.append(f"{event.type_name}: {reason}")

    sub = await nc.subscribe(f"{bus.subjects.namespace}.>", cb=on_msg)
    sent: dict[str, int] = {}
    for i in range(n):
        if i % PER_BAR == 0:
            await asyncio.sleep(IDLE_S)
            await bus.publish(bars(bar))
            bar += BAR
        await asyncio.sleep(IDLE_S)
        event = candidate(SYMBOLS[i % len(SYMBOLS)], bar - BAR)
        sent[event.trace_id] = time.perf_counter_ns()  # the trace the chain's events carry
        await bus.publish(event)
        try:
            while await asyncio.wait_for(done.get(), 30) != event.trace_id:
                pass
        except TimeoutError:
            raise RuntimeError(f"no fill for candidate {i}: {refused[-3:]}") from None
    await sub.unsubscribe()
    samples: dict[str, list[int]] = {}
    for trace, t0 in sent.items():
        for family, kind in STAGES:
            stage = f"{family}.{kind}"
            if stage in seen.get(trace, {}):
                samples.setdefault(stage, []).append(seen[trace][stage] - t0)
    return samples, bar


async def risk_rate(bus: Bus, nc: Any, burst: int) -> float:
    """Confirm decisions published in one burst -> risk decisions per second (audited)."""
    done: asyncio.Queue[int] = asyncio.Queue()

    async def on_risk(msg: Any) -> None:
        await done.put(time.perf_counter_ns())

    sub = await nc.subscribe(bus.subjects.all("risk"), cb=on_risk)
    now = datetime.now(UTC)
    bar = last_closed_bar(now)
    confirms = []
    for i in range(burst):
        c = candidate(SYMBOLS[i % len(SYMBOLS)], bar)
        confirms.append(ConfirmDecision(trace_id=c.trace_id, candidate=c, decision="approve",
                                        side="long", decided_at=now, producer="bench"))
    t = time.perf_counter_ns()
    await bus.publish_many(confirms)
    last = t
    for _ in range(burst):
        last = await asyncio.wait_for(done.get(), 60)
    await sub.unsubscribe()
    return burst / ((last - t) / 1e9)


async def measure(n: int, burst: int) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    database = f"decile_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(ADMIN_DSN, "postgres"))
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = with_database(ADMIN_DSN, database)
    nc = await nats.connect(NATS_URL)
    out: dict[str, Any] = {}
    stack = contextlib.AsyncExitStack()
    try:
        bus = await stack.enter_async_context(provisioned_bus(NATS_URL, namespace, "bench"))
        switches = await KillSwitches.open(bus.js, namespace)
        await switches.set("master", on=False, by="bench")
        with tempfile.TemporaryDirectory(prefix="decile-bench-") as tmp:
            env = {"DECILE_NATS__URL": NATS_URL, "DECILE_NATS__NAMESPACE": namespace,
                   "DECILE_POSTGRES__DSN": dsn, "DECILE_OBS__LOG_LEVEL": "WARNING",
                   "DECILE_STATE_DIR": tmp, "DECILE_ARTIFACTS__ROOT": tmp,
                   "DECILE_CONFIRM__WINDOW_BARS": "0",
                   "DECILE_CONFIRM__CLOCK": "event", "DECILE_RISK__CLOCK": "event",
                   # the bench measures latency, not policy: no book limit may bind
                   "DECILE_RISK__MAX_OPEN_POSITIONS": "100000",
                   "DECILE_RISK__TAIL_BUDGET": "1.0", "DECILE_RISK__MAX_DAILY_LOSS": "0.99",
                   "DECILE_RISK__MAX_DRAWDOWN": "0.99"}
            ports = {name: free_port() for name in ("confirm", "risk", "execution")}
            procs = {}
            try:
                for name, port in ports.items():
                    cm = service_process(f"decile_{name}", {**env, "DECILE_SERVICE": name}, port)
                    procs[name] = (cm, cm.__enter__())
                for name, port in ports.items():
                    await asyncio.to_thread(wait_ready, port, procs[name][1], 60)
                await bus.publish(ModelActivated(
                    family="entry", version="1.0.0", status="production",
                    artifact_uri="file:///m.onnx", sha256="ab" * 32, feature_schema="fs-v1",
                    producer="model-watcher"))
                await asyncio.sleep(1.0)
                first = last_closed_bar(datetime.now(UTC)) - 40 * BAR
                await bus.publish(bars(first - BAR))  # risk knows every symbol's freshness
                _, bar = await chain(bus, nc, 40, first)
                out["stages"], _ = await chain(bus, nc, n, bar)
                out["risk_rate"] = await risk_rate(bus, nc, burst)
                # last: its candidates reach the services too (on the wall clock's bar)
                out["hop"] = await hop_reference(bus, nc, n)
            finally:
                for cm, _ in procs.values():
                    cm.__exit__(None, None, None)
    finally:
        await stack.aclose()
        js = nc.jetstream()
        for stream in await js.streams_info():
            if (stream.config.name or "").startswith((namespace, f"KV_{namespace}")):
                await js.delete_stream(stream.config.name)
        await nc.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--burst", type=int, default=2_000)
    args = parser.parse_args()
    rate, approved = gates_reference(20_000)
    got = asyncio.run(measure(args.candidates, args.burst))
    stages = got["stages"]
    latency = [
        Row("one JetStream hop (publish -> subscriber)", {
            **{k: v for k, v in latency_summary(got["hop"]).items() if k.endswith("_ms")}},
            reference=True),
        Row("candidate -> paper entry fill (confirm, risk, execution; 0 window)", {
            **{k: v for k, v in latency_summary(stages["exec.fill"]).items()
               if k.endswith("_ms")}}),
    ]
    names = {"ml.confirmed": "  of which: -> confirm decision published",
             "risk.approved": "  of which: -> risk decision published",
             "exec.order": "  of which: -> order accepted published"}
    latency += [Row(label, {k: v for k, v in latency_summary(stages[stage]).items()
                            if k.endswith("_ms")}) for stage, label in names.items()]
    add_ratio(latency, "p99_ms", "ratio")
    report("decisions_latency", "Decisions: candidate -> paper fill over JetStream", latency,
           [Column("p50_ms", "p50 ms"), Column("p90_ms", "p90 ms"), Column("p99_ms", "p99 ms"),
            Column("max_ms", "max ms"), Column("ratio", "x one hop (p99)")],
           notes=[f"{args.candidates} candidates one at a time, {IDLE_S} s apart, "
                  f"{PER_BAR} per bar, after 40 warm-up; times from the candidate's publish "
                  "to each stage's event reaching a subscriber; a market order fills as "
                  "it arrives, so its Order and Fill go out in one publish",
                  "target: candidate -> fill p99 <= 15 ms"],
           meta={"machine": machine(["nats-py", "asyncpg"])})
    rates = [
        Row("gates + sizing + event, in process", {"per_s": rate}, reference=True),
        Row("risk service over JetStream, audit rows written behind",
            {"per_s": got["risk_rate"]}),
    ]
    add_ratio(rates, "per_s", "ratio")
    report("decisions_rate", "Risk decisions per second", rates,
           [Column("per_s", "decisions/s", "{:,.0f}"), Column("ratio", "x in process")],
           notes=[f"in process: 20,000 confirms ({approved:,} approved); service: a burst of "
                  f"{args.burst:,} confirm decisions, one in flight (ordered consumer), each "
                  "published (acked by the stream) before the next; the audit rows are "
                  "written behind, in batches"],
           meta={"machine": machine(["nats-py", "asyncpg"])})


if __name__ == "__main__":
    main()
