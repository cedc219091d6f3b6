"""The runtime every service's ``create_app`` builds on: the one bootstrap.

It configures logging, builds the broker (nothing connects at import), serves
``/metrics``, ``/healthz`` and ``/readyz``, provisions the streams before any
consumer starts, and registers guarded subscribers. A service adds its
handlers and state, then ``await runtime.app.run()``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker

from decile import __version__, metrics, obs
from decile.bus import (
    Bus,
    Guard,
    Guards,
    consumer_subject,
    make_broker,
    provision_streams,
    subscribe,
)
from decile.config import ServiceSettings, redacted
from decile.events import Event
from decile.http import HealthServer
from decile.ordered import OrderedConsumer
from decile.subjects import Subjects

log = obs.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    settings: ServiceSettings
    name: str
    subjects: Subjects
    broker: NatsBroker
    bus: Bus
    guards: Guards
    app: FastStream
    health: HealthServer
    checks: dict[str, bool] = field(default_factory=dict)
    failed: str | None = None
    consumers: list[tuple[str, str]] = field(default_factory=list)  # (stream, durable)
    direct: list[OrderedConsumer] = field(default_factory=list)
    _declarations: list[Callable[[], Any]] = field(default_factory=list)
    _direct_tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _stop_hooks: list[Hook] = field(default_factory=list)

    def ready(self, check: str, ok: bool = True) -> None:
        """Set one readiness check; ``/readyz`` is 200 only when all are true.

        Declare a check as False in ``create_app`` so ``/readyz`` waits for it.
        """
        self.checks[check] = ok
        metrics.READY.labels(self.name).set(float(all(self.readiness().values())))

    def readiness(self) -> dict[str, bool]:
        connected = False
        try:
            connected = bool(self.broker.connection and self.broker.connection.is_connected)
        except Exception:
            connected = False
        return {"nats": connected, **self.checks}

    def subscribe(
        self,
        handler: Callable[..., Awaitable[Any]],
        *,
        family: str,
        kind: str | None,
        event: type[Event] | None,
        stream: str,
        key: str | None = None,
        durable: str | None = None,
        batch_size: int = 16,
        batch: bool = False,
        max_wait_s: float = 1.0,
        deliver_new_only: bool = False,
        ordered: bool = False,
        direct: bool = False,
    ) -> Any:
        """A durable, explicitly acked, guarded consumer (see :mod:`decile.bus`).

        ``direct``: consumed by a :class:`decile.ordered.OrderedConsumer` instead of
        FastStream (one message at a time, in order: ``ordered`` and ``batch_size`` 1),
        for the hops of the decision path.
        """
        name = durable or "-".join([self.name, family, kind or "all", *filter(None, [key])])
        self.consumers.append((self.subjects.stream(stream), name))

        def declare() -> Any:
            return subscribe(
                self.broker,
                self.bus,
                self.guards,
                handler=handler,
                family=family,
                kind=kind,
                key=key,
                event=event,
                durable=name,
                stream=stream,
                batch_size=batch_size,
                batch=batch,
                max_wait_s=max_wait_s,
                ordered=ordered,
                deliver_new_only=deliver_new_only,
            )

        if not direct:
            return declare()
        if not ordered or batch or batch_size != 1:
            raise ValueError(f"{name}: a direct consumer is ordered, one message at a time")
        pattern, label = consumer_subject(self.bus, family, kind, key)
        consumer = OrderedConsumer(
            self.bus, self.guards.setdefault(name, Guard(self.bus, label, event)), handler,
            self.subjects.stream(stream), pattern, name, max_wait_s, deliver_new_only)
        self.direct.append(consumer)
        self._declarations.append(declare)
        return consumer

    def start_direct(self) -> None:
        """Start the direct consumers (after the start hooks, as FastStream's subscribers)."""
        self._direct_tasks = [self.spawn(c.run(), f"consume {c.durable}") for c in self.direct]

    async def stop_direct(self) -> None:
        """Stop taking input: the direct consumers end (a message they held is redelivered)."""
        for task in self._direct_tasks:
            task.cancel()
        await asyncio.gather(*self._direct_tasks, return_exceptions=True)

    def document(self) -> None:
        """Declare the direct consumers to FastStream too, for the AsyncAPI document only
        (the broker is never started then)."""
        for declare in self._declarations:
            declare()
        self._declarations.clear()

    def produces(self, event: type[Event], family: str, kind: str | None, doc: str) -> None:
        """Document a publication in the service's AsyncAPI (publishes go through ``bus``)."""
        self.broker.publisher(
            self.subjects.all(family, kind), schema=event, title=f"{self.name}:{family}.{kind}",
            description=doc,
        )

    def on_start(self, hook: Hook) -> Hook:
        """Run after the broker connected and streams exist, before consumers start."""
        self.app.on_startup(hook)
        return hook

    def after_start(self, hook: Hook) -> Hook:
        self.app.after_startup(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        self._stop_hooks.append(hook)
        return hook

    def fail(self, reason: str) -> None:
        """Stop the service with a non-zero exit so its supervisor restarts it."""
        log.error("fatal, stopping", reason=reason)
        self.failed = reason
        self.ready("running", False)
        self.app.exit()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """A background task whose crash fails the service instead of dying silently."""
        task = asyncio.ensure_future(coro)

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                self.fail(f"{name}: {t.exception()!r}")

        task.add_done_callback(done)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._stop_hooks.append(cancel)
        return task

    async def run(self) -> None:
        await self.app.run()
        if self.failed:
            raise SystemExit(1)


def create_runtime(settings: ServiceSettings, name: str | None = None) -> Runtime:
    name = name or settings.service
    obs.configure(name, settings.obs.log_level, settings.obs.log_format)
    subjects = Subjects(settings.nats.namespace)
    guards = Guards()
    broker = make_broker(settings.nats, name, guards)
    bus = Bus(broker, subjects, name)
    app = FastStream(broker, logger=None)
    # the readiness callback looks rt up when asked, after it exists
    health = HealthServer(settings.obs.http_host, settings.obs.http_port, lambda: rt.readiness())
    rt = Runtime(settings, name, subjects, broker, bus, guards, app, health)
    rt.ready("streams", False)
    metrics.INFO.labels(name, __version__).set(1)

    @app.on_startup
    async def _connect() -> None:
        await rt.health.start()
        log.info("starting", settings=redacted(settings), http_port=rt.health.port)
        await broker.connect()
        await provision_streams(bus.js, subjects, settings.nats)
        rt.ready("streams")

    @app.after_startup
    async def _started() -> None:
        # Everything built at start (imports, models, engine state) lives as long as the
        # process: freezing it keeps the cycle-time collections small and short (a full
        # collection over the start-up heap is a tens-of-milliseconds pause on a hot path).
        gc.collect()
        gc.freeze()
        log.info("ready", checks=rt.readiness())
        rt.start_direct()
        if rt.consumers:
            rt.spawn(_sample_consumers(rt), "consumer-lag")
        rt.spawn(_freeze_long_lived(), "gc-freeze")

    @app.on_shutdown
    async def _stop() -> None:
        rt.ready("stopping", False)
        await rt.stop_direct()  # no new input while the hooks wind down
        for hook in reversed(rt._stop_hooks):
            try:
                await hook()
            except Exception as err:
                log.error("stop hook failed", error=repr(err))

    @app.after_shutdown
    async def _closed() -> None:
        await rt.health.stop()
        log.info("stopped")

    return rt


async def _sample_consumers(rt: Runtime, every_s: float = 15.0) -> None:
    """Consumer lag per durable, for the ConsumerLagGrowing alert."""
    import nats.js.errors as js_errors

    while True:
        for stream, durable in rt.consumers:
            try:
                info = await rt.bus.js.consumer_info(stream, durable)
            except (js_errors.Error, TimeoutError):
                continue  # not created yet, or the server is away: try next round
            metrics.CONSUMER_PENDING.labels(rt.name, stream, durable).set(info.num_pending or 0)
            metrics.CONSUMER_ACK_PENDING.labels(rt.name, stream, durable).set(
                info.num_ack_pending or 0
            )
        await asyncio.sleep(every_s)


async def _freeze_long_lived(every_s: float = 10.0) -> None:
    """Keep moving what survived into the frozen generation, as at start.

    A service's long-lived state grows after start (bar history, the book, replayed
    streams); left to the collector, a full collection walks all of it, a 40-100 ms
    pause measured in risk on the decision path; every 10 s keeps the collections left
    at a few milliseconds (30 s left 3-10 ms ones every few seconds). The young
    generations are collected first, so garbage cycles are freed, not frozen; what is
    frozen and dies later is still freed by reference counting.
    """
    while True:
        await asyncio.sleep(every_s)
        gc.collect(1)
        gc.freeze()


def run(make: Callable[[], Runtime]) -> None:
    """Entry point helper for ``python -m decile_<service>``: on uvloop where it exists
    (every message is a few socket reads and writes; uvloop does them in C)."""
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        asyncio.run(make().run())
        return
    uvloop.run(make().run())
