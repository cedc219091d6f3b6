"""The one long-running task: listen to the registry, resync, retry what failed.

Order matters. NOTIFY is not stored: a change committed while nobody listens
is lost. So on every (re)connect LISTEN is active first and only then is the
registry re-read (``on_connect``): nothing can fall between the two. The
same re-read runs every ``resync_s`` as a backstop.

Nothing transient stops the service: a failed connect, notification or
slot check is logged, counted (``decile_model_watch_errors_total{stage}``),
flags ``decile_model_watch_pending`` and triggers a full resync after a
doubling backoff (``retry_min_s`` .. ``retry_max_s``) until one succeeds. A
retry re-reads the registry's current state, so the item is never dropped:
at worst it is superseded by what the registry says now. One lock
serialises notifications and resyncs, so announcements keep commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from decile import obs
from decile_model_watcher import handlers, metrics
from decile_model_watcher.activation import LIVE
from decile_model_watcher.handlers import Deps
from decile_model_watcher.settings import WatcherSection

log = obs.get_logger(__name__)


class WatchLoop:
    def __init__(
        self,
        connect: Callable[[], Awaitable[Deps]],
        cfg: WatcherSection,
        ready: Callable[[bool], None],
    ) -> None:
        self._connect = connect
        self.cfg = cfg
        self._ready = ready
        self.deps: Deps | None = None
        self._lock = asyncio.Lock()
        self._dirty = False
        self._kick = asyncio.Event()
        self._connects = 0
        self._synced = False

    async def run(self) -> None:
        """Connect (retrying), then listen forever; cancellation stops it cleanly."""
        deps = await self._open()
        resyncer = asyncio.create_task(self._periodic(deps), name="model-watch-resync")
        try:
            async for change in deps.registry.watch(on_connect=lambda: self._on_connect(deps)):
                await self._on_change(change, deps)
        finally:
            resyncer.cancel()
            await asyncio.gather(resyncer, return_exceptions=True)

    async def _open(self) -> Deps:
        delay = self.cfg.retry_min_s
        while True:
            try:
                self.deps = await self._connect()
                return self.deps
            except Exception as err:  # database or artifact store away: retry, never crash
                self._failed("connect", err, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cfg.retry_max_s)

    async def _on_connect(self, deps: Deps) -> None:
        self._connects += 1
        if self._connects > 1:
            metrics.RECONNECTS.inc()
        await self.resync(deps, "connect")

    async def _on_change(self, change: dict[str, Any], deps: Deps) -> None:
        async with self._lock:
            try:
                outcome = await handlers.on_change(change, deps)
            except Exception as err:
                self._failed("change", err, change=change)
                return
        log.info("registry change", change=change, outcome=outcome)

    async def resync(self, deps: Deps, reason: str) -> bool:
        """Re-check every (family, status) slot; True when every check succeeded."""
        metrics.RESYNCS.labels(reason).inc()
        ok = True
        async with self._lock:
            outcomes: dict[str, str] = {}
            for family in deps.families:
                for status in LIVE:
                    try:
                        outcomes[f"{family}@{status}"] = await handlers.check_slot(
                            family, status, deps
                        )
                    except Exception as err:
                        self._failed("resync", err, family=family, status=status)
                        ok = False
            if ok:
                self._dirty = False
                metrics.PENDING.set(0)
        log.info("registry resync", reason=reason, ok=ok, slots=outcomes)
        if ok and not self._synced:
            self._synced = True
            self._ready(True)
        return ok

    def _failed(self, stage: str, err: Exception, **context: Any) -> None:
        metrics.ERRORS.labels(stage).inc()
        metrics.PENDING.set(1)
        self._dirty = True
        self._kick.set()
        log.warning("model watch failed, will retry", stage=stage, error=repr(err)[:500],
                  **context)

    async def _periodic(self, deps: Deps) -> None:
        """A full resync every ``resync_s``, or after a backoff while something failed."""
        delay = self.cfg.retry_min_s
        while True:
            if self._dirty:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)
                reason = "retry"
            else:
                delay = self.cfg.retry_min_s
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self.cfg.resync_s)
                if self._dirty:
                    continue
                reason = "periodic"
            await self.resync(deps, reason)
