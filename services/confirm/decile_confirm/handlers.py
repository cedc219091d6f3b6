"""Glue: candidates and bar cross-sections in, ConfirmDecisions out.

One lock around every handler: a candidate's window is opened, persisted and
registered while no bar can slip past it, and a window is decided, published
and deleted while no candidate can reopen it. Candidates are few and a bar
cross-section is one per bar close, so nothing waits long on it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from decile.bus import Bus
from decile.clock import EventClock
from decile.events import BarBatch, CandidateSignal
from decile.market.timeframes import parse
from decile.obs import get_logger
from decile_confirm import metrics as m
from decile_confirm.book import Ready, WindowBook, candidate_close
from decile_confirm.models import ModelSlot
from decile_confirm.settings import ConfirmSection
from decile_confirm.store import WindowStore
from decile_confirm.verdict import verdict

log = get_logger(__name__)


@dataclass
class Confirmer:
    bus: Bus
    book: WindowBook
    store: WindowStore
    models: ModelSlot
    cfg: ConfirmSection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    clock: EventClock = field(init=False)

    def __post_init__(self) -> None:
        # Wall mode: the wall clock, never before the event being handled. Event mode: the
        # book judges deadlines by the bar cross-sections alone (see decile_confirm.book).
        self.clock = EventClock(self.cfg.clock)

    def now(self, event_time: datetime | None = None) -> datetime:
        return self.clock.now(event_time)

    async def on_candidate(self, candidate: CandidateSignal) -> None:
        """Open its window: decided at once when ready, else persisted, then acked."""
        async with self.lock:
            start = time.perf_counter()
            now = self.now(candidate_close(candidate))
            window = self.book.open(candidate, now)
            if window is None:
                return  # redelivered while its window is open: already persisted
            if self.book.beyond_history(window):
                m.BEYOND_HISTORY.inc()
                log.warning("candidate older than the bars kept; its window may miss bars",
                            candidate_id=candidate.id, symbol=candidate.symbol,
                            bar_time=candidate.bar_time.isoformat(),
                            history_bars=self.book.history.keep)
            ready = self.book.ready(window, now)
            if ready is not None:
                await self._decide([ready], start)
                return
            await self.store.save(window)  # before the ack (the Guard acks on return)
            self.book.register(window)
            m.OPEN_WINDOWS.set(len(self.book))

    async def on_bars(self, batch: BarBatch) -> None:
        """Feed the cross-section to the open windows; decide those now complete or stale."""
        async with self.lock:
            start = time.perf_counter()
            close = batch.bar_time + timedelta(seconds=parse(batch.tf).seconds)
            await self._decide(self.book.on_bars(batch, self.now(close)), start)

    async def tick(self) -> None:
        """Wall clock: windows whose deadline passed without a bar to notice it."""
        async with self.lock:
            start = time.perf_counter()
            await self._decide(self.book.due(self.now()), start)

    async def restore(self) -> int:
        """Reload the persisted windows (after the bar history), deciding the ready ones."""
        async with self.lock:
            start = time.perf_counter()
            windows = await self.store.load()
            for window in windows:
                self.book.restore(window)
            m.RESTORED.set(len(windows))
            await self._decide(self.book.due(self.now()), start)
            return len(windows)

    async def _decide(self, ready: list[Ready], start: float) -> None:
        for r in ready:
            model = self.models.current  # read once: one decision, one version
            decision = verdict(r, self.book.config, model, self.cfg.without_model,
                               self.bus.service)
            ack = await self.bus.publish(decision)  # id from the candidate's: a repeat is dropped
            cid = r.window.candidate.id
            code = decision.reason.code.value if decision.reason else ""
            if ack.duplicate:
                m.REPUBLISHED.inc()
            else:
                m.DECISIONS.labels(decision.decision, code).inc()
                if not r.stale and model is None:
                    m.UNSCORED.labels("no_model", decision.decision).inc()
                m.WAIT_SECONDS.observe(
                    (decision.decided_at - candidate_close(r.window.candidate)).total_seconds())
            if cid in self.book.windows:  # persisted: delete only once published and counted
                await self.store.delete(cid)
                self.book.remove(cid)
            log.info("confirm decision", id=decision.id, candidate_id=cid,
                     symbol=decision.candidate.symbol, decision=decision.decision, code=code,
                     p_confirm=decision.p_confirm, model_version=decision.model_version,
                     window_bars=decision.window_bars, decided_at=decision.decided_at.isoformat(),
                     republished=bool(ack.duplicate))
        if ready:
            m.DECISION_SECONDS.observe(time.perf_counter() - start)
        m.OPEN_WINDOWS.set(len(self.book))
