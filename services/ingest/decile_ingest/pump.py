"""The ingest loop: source -> Ingestor -> JetStream, pipelined, resumable.

Publishes are pipelined (up to ``max_inflight`` unacked) so a replay is not
bound by one round trip per cycle; ordering holds because there is one
connection and one stream. On start the last stored base cycle is read back
from JetStream: everything before it is replayed into the state only (quality,
assembler, higher-timeframe bars since the last 4h boundary) and publishing
resumes at that cycle, whose repeat the server drops by its stable id.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.js.errors as js_errors
from nats.js import api as js_api

from decile import codec
from decile.bus import Bus
from decile.events import BarBatch
from decile.market.timeframes import align, parse
from decile.obs import get_logger
from decile.settle import wait_settled
from decile_ingest import metrics
from decile_ingest.pipeline import Ingestor, Outcome
from decile_ingest.settings import IngestSection
from decile_ingest.sources import EVENT_TIME, Source

log = get_logger(__name__)


@dataclass
class Progress:
    """What a progress bar or a test wants to know about a running pump."""

    bars: int = 0
    cycles: int = 0
    quarantined: int = 0
    last_ts: int | None = None
    resumed_at: int | None = None
    done: bool = False
    started: float = field(default_factory=time.monotonic)


async def last_published(bus: Bus, tf: str) -> int | None:
    """Open time (ms) of the newest stored base cycle, or None on a fresh stream."""
    try:
        msg = await bus.js.get_last_msg(bus.subjects.stream("MD"), bus.subjects.md_bars(tf))
    except js_errors.NotFoundError:
        return None
    event = codec.decode(msg.data, dict(msg.headers or {}), expect=BarBatch)
    assert isinstance(event, BarBatch)
    return int(event.bar_time.timestamp() * 1000)


class Pump:
    def __init__(self, bus: Bus, source: Source, cfg: IngestSection,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.bus, self.source, self.cfg = bus, source, cfg
        self.ingestor = Ingestor(cfg.tf, tuple(cfg.higher), int(cfg.grace_s * 1000), source.name)
        self.progress = Progress()
        self.on_progress = on_progress
        self._inflight: deque[asyncio.Future[js_api.PubAck]] = deque()

    async def run(self) -> Progress:
        resume = await last_published(self.bus, self.cfg.tf)
        longest = max((parse(t) for t in self.cfg.higher), key=lambda t: t.ms, default=None)
        since = align(resume, longest) if resume is not None and longest else resume
        self.progress.resumed_at = resume
        if resume is not None:
            log.info("resuming", last_published=resume, warm_from=since, source=self.source.name)
        pace_prev: int | None = None
        async for chunk in self.source.chunks(since):
            if not len(chunk.bars):
                continue
            ts = int(chunk.bars.ts.max())
            live = resume is None or ts >= resume
            if live and self.cfg.speed > 0 and chunk.now_ms == EVENT_TIME:
                if pace_prev is not None and ts > pace_prev:
                    await asyncio.sleep((ts - pace_prev) / 1000 / self.cfg.speed)
                pace_prev = ts
            start = time.perf_counter()
            out = self.ingestor.feed(chunk.bars, chunk.now_ms)
            metrics.CYCLE_SECONDS.observe(time.perf_counter() - start)
            if live:
                await self._publish(out)
        await self._publish(self.ingestor.flush())
        await self._drain()
        self.progress.done = True
        self._report()
        log.info("source finished", bars=self.progress.bars, cycles=self.progress.cycles,
                 quarantined=self.progress.quarantined, source=self.source.name)
        return self.progress

    async def _publish(self, out: Outcome) -> None:
        if self.cfg.lockstep and out.cycles:
            await self._drain()
            waited = await wait_settled(self.bus.js, self.bus.subjects)
            metrics.LOCKSTEP_WAIT.observe(waited)
        for event in out.events:
            fut = await self.bus.send(event)
            self._inflight.append(fut)
            if len(self._inflight) >= self.cfg.max_inflight:
                await self._inflight.popleft()  # raises if the server refused it
        for reason, n in out.quarantined.items():
            metrics.QUARANTINED.labels(reason).inc(n)
            self.progress.quarantined += n
        if out.gap_bars:
            metrics.GAP_BARS.labels(self.cfg.tf).inc(out.gap_bars)
        for tf, batch in out.cycles:
            n = len(batch.symbols)
            metrics.BARS.labels(tf.value).inc(n)
            metrics.CYCLES.labels(tf.value).inc()
            if tf.value == self.cfg.tf:
                metrics.MISSING.labels(tf.value).set(len(batch.missing))
                metrics.CYCLE_SYMBOLS.labels(tf.value).set(n)
                metrics.LAST_BAR.labels(tf.value).set(batch.bar_time.timestamp())
                self.progress.bars += n
                self.progress.cycles += 1
                self.progress.last_ts = int(batch.bar_time.timestamp() * 1000)
        if out.cycles:
            self._report()

    async def _drain(self) -> None:
        while self._inflight:
            await self._inflight.popleft()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
