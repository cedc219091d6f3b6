"""The one bootstrap of the confirm service."""

from __future__ import annotations

import asyncio
from typing import Any

from decile.bus import decoder_for
from decile.events import BarBatch, CandidateSignal, ConfirmDecision, ModelActivated
from decile.obs import get_logger
from decile.rebuild import replay_to_floor, resume_after_floor
from decile.registry import Registry, open_artifacts
from decile.service import Runtime, create_runtime
from decile.store import migrate
from decile.store.pool import open_pool
from decile_confirm import metrics as m
from decile_confirm.book import WindowBook
from decile_confirm.handlers import Confirmer
from decile_confirm.models import FAMILY, ModelSlot
from decile_confirm.settings import ConfirmSettings
from decile_confirm.store import WindowStore

log = get_logger(__name__)

CANDIDATES_DURABLE = "confirm-candidates"
TICK_S = 1.0  # wall clock: how often deadlines are checked between bars


def create_app(settings: ConfirmSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("state", False)
    cfg = settings.confirm
    config = cfg.config()
    tf = config.window_tf.value
    bars_durable = f"confirm-bars-{tf}"
    holder: dict[str, Any] = {}

    async def on_candidate(candidate: CandidateSignal) -> None:
        """A candidate -> its window opened (persisted) or decided at once."""
        await holder["confirmer"].on_candidate(candidate)

    async def on_bars(batch: BarBatch) -> None:
        """A bar cross-section of the window timeframe -> windows fed, ready ones decided."""
        await holder["confirmer"].on_bars(batch)

    # Ordered: stream order is processing order (one message in flight per consumer).
    rt.subscribe(on_candidate, family="ml", kind="candidate", event=CandidateSignal,
                 stream="SIG", durable=CANDIDATES_DURABLE, batch_size=1, max_wait_s=1.0,
                 ordered=True, direct=True)
    rt.subscribe(on_bars, family="md", kind="bars", key=tf, event=BarBatch, stream="MD",
                 durable=bars_durable, batch_size=1, max_wait_s=1.0, ordered=True, direct=True)

    # Core NATS, not a durable: what is missed while away the registry re-read catches.
    @rt.broker.subscriber(rt.subjects.model_activated(FAMILY),
                          decoder=decoder_for(ModelActivated))  # type: ignore[arg-type]
    async def activated(event: ModelActivated) -> None:
        """A confirm version was promoted: swap it in between decisions."""
        if "models" in holder:
            await holder["models"].activate(event)

    rt.produces(ConfirmDecision, "ml", "confirmed", "One per approved or inverted candidate.")
    rt.produces(ConfirmDecision, "ml", "vetoed", "One per vetoed candidate: the reason.")

    @rt.on_start
    async def _state() -> None:
        dsn = settings.postgres.dsn.get_secret_value()
        pool = await open_pool(settings.postgres)
        holder["pool"] = pool
        async with pool.acquire() as conn:
            await migrate.apply(conn)
        registry = await Registry.connect(dsn)
        holder["registry"] = registry
        models = ModelSlot(registry, await open_artifacts(settings.artifacts,
                                                          rt.broker.connection), config)
        await models.reconcile()
        holder["models"] = models
        book = WindowBook(config, cfg.clock, cfg.history_keep)
        replayed = await replay_to_floor(rt.bus, stream="MD", subject=rt.subjects.md_bars(tf),
                                         durable=bars_durable, event=BarBatch,
                                         apply=book.history.keep_batch)
        m.HISTORY_REPLAYED.set(replayed)
        # a candidate a killed predecessor held unacked comes back now, not after the ack wait
        await resume_after_floor(rt.bus, stream="SIG", subject=rt.subjects.all("ml", "candidate"),
                                 durable=CANDIDATES_DURABLE)
        confirmer = Confirmer(rt.bus, book, WindowStore(pool), models, cfg)
        restored = await confirmer.restore()
        holder["confirmer"] = confirmer
        log.info("confirm settings", **config.flow_params(), max_wait_s=config.max_wait_s,
                 approve_at=list(config.approve_at), invert_at=list(config.invert_at),
                 inversion=config.inversion, clock=cfg.clock, without_model=cfg.without_model,
                 model=models.version or None, history_replayed=replayed,
                 windows_restored=restored)
        if models.current is None:
            log.warning("no usable confirm model: complete windows are decided without one",
                        without_model=cfg.without_model)

    @rt.after_start
    async def _follow() -> None:
        await holder["models"].reconcile()  # anything promoted before the subscription
        rt.ready("state")
        rt.spawn(_reconcile_every(holder["models"], cfg.reconcile_s), "registry-reconcile")
        if cfg.clock == "wall":
            rt.spawn(_tick_every(holder["confirmer"], TICK_S), "window-deadlines")

    @rt.on_stop
    async def _close() -> None:
        if "registry" in holder:
            await holder["registry"].close()
        if "pool" in holder:
            await holder["pool"].close()

    return rt


async def _reconcile_every(models: ModelSlot, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await models.reconcile()
        except Exception as err:  # a registry outage: keep deciding with what is loaded
            log.warning("registry re-read failed; retrying", error=repr(err))


async def _tick_every(confirmer: Confirmer, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await confirmer.tick()
        except Exception as err:  # NATS or PostgreSQL away: the windows stay open, try again
            log.warning("deadline check failed; retrying", error=repr(err))
