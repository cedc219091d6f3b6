"""Bus baseline: what one relay hop costs, raw nats-py vs FastStream vs our JetStream path.

Every path does the same work per message: decode a ``CandidateSignal`` with
``decile.codec``, build its ``ConfirmDecision`` child (``Event.follow``), encode
it with the codec and publish it. Only the plumbing differs:

- ``raw nats-py``: a core NATS subscription callback, ``nc.publish`` (the reference);
- ``FastStream``: a core ``NatsBroker`` subscriber with our codec as decoder,
  ``broker.publish`` out;
- ``decile.bus (JetStream)``: ``Bus.publish`` into the SIG stream, a durable,
  explicitly acked, guarded pull consumer (``Runtime.subscribe``) whose handler
  ``Bus.publish``-es the child and waits for its ack: a service's real per-event path.

The relay runs in its own process, as a service would; the origin (load and
clock) runs here and listens on core NATS for the relayed events. Latency is
origin publish -> origin receipt, matched on the ``Decile-Trace`` header
(the codec sets it and ``follow`` keeps the trace), at a paced rate. Max rate
is a blast with a bounded number in flight, so it is the rate the relay
sustains, not how fast a queue fills. The JetStream path is also paced at
200 msg/s: at 1,000 msg/s it runs near its ceiling, where latency is mostly queue.
The relay's CPU per event says whether a rate is the relay's limit or the box's.

Run: ``uv run python -m tests.bench.bench_bus [--cases raw,faststream]`` (``make
bench``); about 45 s. ``DECILE_BENCH_PROFILE=<dir>`` writes a cProfile per relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

from decile import codec, obs, servers
from decile.bus import Bus, decoder_for, make_broker, subject_for
from decile.config import NatsSettings, ServiceSettings
from decile.events import CandidateSignal, ConfirmDecision
from decile.service import create_runtime
from decile.subjects import Subjects
from tests.bench import harness

ROOT = Path(__file__).resolve().parents[2]
RATE = 1_000  # msg/s for the latency run
WARMUP = 500
WINDOW = 1_000  # most messages in flight during the blast
JS_BLAST_CAP = 15_000  # JetStream needs unique ids (dedup): pre-built events
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 10.0
RELAY_LIFETIME_S = 180.0  # a relay whose origin died still exits by itself
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT")
BAR_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def candidate(i: int) -> CandidateSignal:
    """A realistic candidate (~700 B of JSON); each has its own id and trace."""
    return CandidateSignal(
        producer="bench-origin", symbol=SYMBOLS[i % len(SYMBOLS)], tf="5m", bar_time=BAR_TIME,
        strategy="bench", side="long", entry_price=100.0 + i % 50, atr=1.5, p_win=0.61,
        sl_katr=1.2, rr_target=2.0, offset_katr=0.1, score=0.7, rank=1 + i % 12,
        cycle_size=120, cycle_threshold=0.65, score_floor=0.55,
        model_versions={"entry": "2024-01-01.1", "risk": "2024-01-01.1"}, feature_schema="f1",
    )


def confirm(event: CandidateSignal) -> ConfirmDecision:
    """The relay's domain work, identical on every path: one validated child event."""
    return event.follow(ConfirmDecision, "bench", candidate=event, decision="approve",
                        side=event.side, decided_at=event.ts_event, producer="bench-relay")


# ---- relays (child processes) -----------------------------------------------------


def _ready() -> None:
    print("READY", flush=True)


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), RELAY_LIFETIME_S)


async def relay_raw(url: str, namespace: str) -> None:
    subjects = Subjects(namespace)
    nc = await nats.connect(url, name="bench-relay-raw")

    async def on_msg(msg: Msg) -> None:
        out = confirm(codec.decode(msg.data, msg.headers, expect=CandidateSignal))  # type: ignore[arg-type]
        body, headers = codec.encode(out)
        await nc.publish(subject_for(out, subjects), body, headers=headers)

    await nc.subscribe(subjects.all("ml", "candidate"), cb=on_msg)
    await nc.flush()
    _ready()
    await _until_terminated()
    await nc.drain()


async def relay_faststream(url: str, namespace: str) -> None:
    subjects = Subjects(namespace)
    broker = make_broker(NatsSettings(url=url, namespace=namespace), "bench-relay")

    @broker.subscriber(subjects.all("ml", "candidate"),
                       decoder=decoder_for(CandidateSignal))  # type: ignore[arg-type]
    async def relay(event: CandidateSignal) -> None:
        out = confirm(event)
        body, headers = codec.encode(out)
        await broker.publish(body, subject_for(out, subjects), headers=headers)

    await broker.connect()
    await broker.start()
    _ready()
    await _until_terminated()
    await broker.stop()


async def relay_jetstream(url: str, namespace: str) -> None:
    settings = ServiceSettings(service="bench-relay",
                               nats={"url": url, "namespace": namespace},  # type: ignore[arg-type]
                               obs={"http_port": 0, "log_level": "WARNING"})  # type: ignore[arg-type]
    rt = create_runtime(settings)

    async def relay(event: CandidateSignal) -> None:
        await rt.bus.publish(confirm(event))

    rt.subscribe(relay, family="ml", kind="candidate", event=CandidateSignal, stream="SIG")

    @rt.on_start
    async def _watchdog() -> None:
        asyncio.get_running_loop().call_later(RELAY_LIFETIME_S, rt.app.exit)

    @rt.after_start
    async def _announce() -> None:
        _ready()

    await rt.run()


RELAYS: dict[str, Callable[[str, str], Coroutine[Any, Any, None]]] = {
    "raw": relay_raw, "faststream": relay_faststream, "jetstream": relay_jetstream,
}


# ---- origin -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One row: which relay, the paced rate for its latency, and whether to blast it.

    ``jetstream`` relays read a stream, whose dedup needs a fresh event id per message.
    """

    label: str
    relay: str
    rate: int = RATE
    blast: bool = True
    jetstream: bool = False


CASES = {
    "raw": Case("raw nats-py", "raw"),
    "faststream": Case("FastStream", "faststream"),
    "jetstream": Case("decile.bus (JetStream)", "jetstream", jetstream=True),
    # below its max rate, so the latency is the hop's and not a growing queue's
    "jetstream-200": Case("decile.bus (JetStream), 200 msg/s", "jetstream", 200, blast=False,
                          jetstream=True),
}


class Sink:
    """The origin's receiving end: counts relayed events, times the ones it awaits."""

    def __init__(self) -> None:
        self.received = 0
        self.last_ns = 0
        self.sent_at: dict[str, int] = {}  # trace id -> publish time, paced run only
        self.latencies: list[int] = []
        self._progress = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        now = time.perf_counter_ns()
        self.received += 1
        self.last_ns = now
        if self.sent_at:
            t0 = self.sent_at.pop((msg.headers or {}).get(codec.H_TRACE, ""), None)
            if t0 is not None:
                self.latencies.append(now - t0)
        self._progress.set()

    async def wait_for(self, count: int) -> bool:
        """Until ``count`` events arrived in total; False after DRAIN_TIMEOUT_S without."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.received < count:
            self._progress.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True


Send = Callable[[int, bool], Awaitable[Any]]  # (index, paced) -> None


async def blast(send: Send, sink: Sink, start: int, count: int, seconds: float,
                relay_pid: int | None = None) -> dict[str, Any]:
    """Send as fast as the relay keeps up (at most WINDOW in flight) for ``seconds``."""
    base = sink.received
    cpu0 = harness.process_cpu_s(relay_pid) if relay_pid else math.nan
    own0 = time.process_time()
    t0 = time.perf_counter_ns()
    deadline = time.perf_counter() + seconds
    sent = 0
    while sent < count and time.perf_counter() < deadline:
        if sent - (sink.received - base) >= WINDOW:
            await sink.wait_for(base + sent - WINDOW // 2)
            continue
        await send(start + sent, False)
        sent += 1
    drained = await sink.wait_for(base + sent)
    got = sink.received - base
    elapsed = (sink.last_ns - t0) / 1e9
    own = time.process_time() - own0
    cpu = harness.process_cpu_s(relay_pid) - cpu0 if relay_pid else math.nan
    return {"blast_sent": sent, "max_rate": got / elapsed if elapsed > 0 else 0.0,
            "blast_lost": sent - got, "drained": drained,
            "relay_cpu_us": cpu / got * 1e6 if got else math.nan,
            "origin_cpu_us": own / got * 1e6 if got else math.nan}


async def paced(send: Send, sink: Sink, trace_of: Callable[[int], str], start: int,
                count: int, rate: int) -> dict[str, Any]:
    """``count`` messages at ``rate``/s; latency of each from publish to relayed receipt."""
    base = sink.received
    sink.latencies = []
    period = 1.0 / rate
    t_start = time.perf_counter()
    for k in range(count):
        delay = t_start + k * period - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sink.sent_at[trace_of(start + k)] = time.perf_counter_ns()
        await send(start + k, True)
    send_rate = count / (time.perf_counter() - t_start)
    await sink.wait_for(base + count)
    lost = len(sink.sent_at)
    sink.sent_at.clear()
    return {**harness.latency_summary(sink.latencies), "paced_rate": send_rate, "paced_lost": lost}


async def start_relay(path: str, url: str, namespace: str) -> asyncio.subprocess.Process:
    profile = os.environ.get("DECILE_BENCH_PROFILE")  # a dir: cProfile each relay into it
    prefix = ["-m", "cProfile", "-o", str(Path(profile) / f"{path}.prof")] if profile else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *prefix, "-m", "tests.bench.bench_bus", "--relay", path, "--url", url,
        "--namespace", namespace, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
            if not line:
                raise RuntimeError(f"{path} relay exited before it was ready")
            if line.strip() == b"READY":
                return proc
    except BaseException:
        await stop_relay(proc)
        raise


async def stop_relay(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def measure(case: Case, url: str, paced_s: float, blast_s: float) -> harness.Row:
    """One case: start its relay, warm up, paced latency run, then the blast."""
    path = case.relay
    namespace = "bench" + uuid.uuid4().hex[:8]
    subjects = Subjects(namespace)
    n_paced = int(case.rate * paced_s)
    sink = Sink()
    nc = await nats.connect(url, name="bench-origin")
    proc = await start_relay(path, url, namespace)
    broker = None
    try:
        await nc.subscribe(subjects.all("ml", "confirmed"), cb=sink.on_msg)
        await nc.flush()
        if case.jetstream:
            broker = make_broker(NatsSettings(url=url, namespace=namespace), "bench-origin")
            await broker.connect()
            bus = Bus(broker, subjects, "bench-origin")
            events = [candidate(i) for i in range(WARMUP + n_paced + JS_BLAST_CAP)]
            blast_cap = JS_BLAST_CAP
            pending: list[asyncio.Future[Any]] = []

            async def send(i: int, wait_ack: bool) -> None:
                if wait_ack:  # paced: the real per-event call
                    await bus.publish(events[i])
                else:  # blast: pipelined, acks collected at the end
                    pending.append(await bus.send(events[i]))

            def trace_of(i: int) -> str:
                return events[i].trace_id
        else:
            pool: list[tuple[str, bytes, dict[str, str], str]] = []
            for i in range(WARMUP + n_paced):
                event = candidate(i)
                body, headers = codec.encode(event)
                pool.append((subject_for(event, subjects), body, headers, event.trace_id))
            blast_cap = 10**9  # core NATS has no dedup: the pool is reused round-robin

            async def send(i: int, wait_ack: bool) -> None:
                subject, body, headers, _ = pool[i % len(pool)]
                await nc.publish(subject, body, headers=headers)

            def trace_of(i: int) -> str:
                return pool[i % len(pool)][3]

        await blast(send, sink, 0, WARMUP, 30.0)
        latency = await paced(send, sink, trace_of, WARMUP, n_paced, case.rate)
        rate = {}
        if case.blast:
            rate = await blast(send, sink, WARMUP + n_paced, blast_cap, blast_s, proc.pid)
        if case.jetstream:
            await asyncio.gather(*pending)
        return harness.Row(case.label, {"paced_at": case.rate, **latency, **rate},
                           reference=path == "raw")
    finally:
        await stop_relay(proc)
        await nc.close()
        if broker is not None:
            await broker.stop()
        if case.jetstream:
            from decile.testing.plugin import delete_streams

            await delete_streams(url, namespace)


async def origin(cases: list[Case], paced_s: float, blast_s: float) -> None:
    endpoint = servers.ensure("nats", os.environ.get(servers.ENV_VARS["nats"]) or None,
                              Path(tempfile.mkdtemp(prefix="decile-bench-")))
    try:
        info = servers.nats_info(endpoint.url) or {}
        rows = []
        for case in cases:
            began = time.perf_counter()
            print(f"bench_bus: {case.label} ...", file=sys.stderr, flush=True)
            rows.append(await measure(case, endpoint.url, paced_s, blast_s))
            print(f"bench_bus: {case.label} done in {time.perf_counter() - began:.1f} s",
                  file=sys.stderr, flush=True)
    finally:
        endpoint.stop()
    if any(r.reference for r in rows):
        harness.add_ratio(rows, "max_rate", "rate_vs_raw")
        harness.add_ratio(rows, "p50_ms", "p50_vs_raw")
    columns = [
        harness.Column("paced_at", "paced msg/s", "{:,.0f}"),
        harness.Column("p50_ms", "p50 ms", "{:.3f}"),
        harness.Column("p99_ms", "p99 ms", "{:.3f}"),
        harness.Column("max_rate", "max msg/s", "{:,.0f}"),
        harness.Column("rate_vs_raw", "msg/s vs raw", "{:.3f}x"),
        harness.Column("p50_vs_raw", "p50 vs raw", "{:.2f}x"),
        harness.Column("relay_cpu_us", "relay CPU µs/msg", "{:,.0f}"),
        harness.Column("origin_cpu_us", "origin CPU µs/msg", "{:,.0f}"),
        harness.Column("paced_lost", "lost", "{:,.0f}"),
    ]
    notes = [
        f"CandidateSignal in, ConfirmDecision out (decile.codec both ways); relay in its own "
        f"process; latency over {paced_s:g} s at the paced rate, publish -> relayed receipt "
        f"at the origin; max rate = {blast_s:g} s blast with at most {WINDOW:,} in flight; "
        "relay / origin CPU = each process's user+system CPU during the blast per relayed "
        "event (CPU, not wall time: it shows who the bottleneck was).",
        f"nats-server {info.get('version', '?')} at {endpoint.url} ({endpoint.origin}); "
        f"{os.cpu_count()} CPUs shared by server, relay and origin.",
        "JetStream path: origin Bus.publish (acked) when paced, Bus.send (pipelined) when "
        "blasting; relay = durable guarded pull consumer, Bus.publish of the child, explicit ack.",
    ]
    meta = harness.machine(["faststream", "nats-py", "pydantic"])
    meta |= {"nats_server": info.get("version"), "rate": RATE, "paced_s": paced_s,
             "blast_s": blast_s, "window": WINDOW}
    harness.report("bench_bus", "One relay hop over NATS", rows, columns, notes=notes, meta=meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_bus", description=__doc__
                                     .split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " +
                        ", ".join(CASES))
    parser.add_argument("--paced-s", type=float, default=5.0)
    parser.add_argument("--blast-s", type=float, default=3.0)
    parser.add_argument("--relay", choices=sorted(RELAYS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    obs.configure("bench", "WARNING")
    if args.relay:
        asyncio.run(RELAYS[args.relay](args.url, args.namespace))
        return 0
    names = [p.strip() for p in args.cases.split(",") if p.strip()]
    unknown = set(names) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    cases = [CASES[n] for n in names]
    asyncio.run(asyncio.wait_for(origin(cases, args.paced_s, args.blast_s), 150))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
