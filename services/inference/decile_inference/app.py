"""The one bootstrap of the inference service."""

from __future__ import annotations

import asyncio
from typing import Any

from decile.bus import decoder_for
from decile.events import (
    CandidateSignal,
    FeatureBatch,
    InferenceCycle,
    ModelActivated,
    RetrainRequested,
)
from decile.registry import Registry, open_artifacts
from decile.service import Runtime, create_runtime
from decile_inference.book import ModelBook
from decile_inference.cycle import Cycle, on_features
from decile_inference.settings import InferenceSettings


def create_app(settings: InferenceSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("models", False)
    cfg = settings.inference
    holder: dict[str, Any] = {}

    async def handle(batch: FeatureBatch) -> None:
        """A feature cross-section -> scored proposals -> candidates of the cycle's top decile."""
        await on_features(batch, holder["cycle"])

    rt.subscribe(handle, family="feat", kind="batch", key=cfg.tf, event=FeatureBatch,
                 stream="FEAT", durable=f"inference-features-{cfg.tf}", batch_size=1,
                 max_wait_s=0.05, ordered=True)

    # Core NATS, not a durable: every replica must hear every activation, and what one
    # misses while away the periodic registry re-read catches.
    @rt.broker.subscriber(rt.subjects.all("model", "activated"),
                          decoder=decoder_for(ModelActivated))  # type: ignore[arg-type]
    async def activated(event: ModelActivated) -> None:
        """A validated version was promoted: swap it in between cycles."""
        if "book" in holder:
            await holder["book"].activate(event.family, event.status, event.version, event.sha256)

    rt.produces(CandidateSignal, "ml", "candidate", "One per kept proposal of a cycle.")
    rt.produces(InferenceCycle, "ml", "cycle", "One per feature batch: scored or skipped, why.")
    rt.produces(RetrainRequested, "model", "retrain", "Feature drift past PSI 0.2 (rate-limited).")

    @rt.on_start
    async def _state() -> None:
        registry = await Registry.connect(settings.postgres.dsn.get_secret_value())
        store = await open_artifacts(settings.artifacts, rt.broker.connection)
        book = ModelBook(registry, store)
        holder["registry"] = registry
        holder["book"] = book
        holder["cycle"] = Cycle(rt.bus, book, cfg)
        await book.reconcile()

    @rt.after_start
    async def _follow_registry() -> None:
        book: ModelBook = holder["book"]
        await book.reconcile()  # anything promoted between the first read and the subscriptions
        rt.ready("models")
        rt.spawn(_reconcile_every(book, cfg.reconcile_s), "registry-reconcile")

    @rt.on_stop
    async def _close() -> None:
        if "registry" in holder:
            await holder["registry"].close()

    return rt


async def _reconcile_every(book: ModelBook, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await book.reconcile()
