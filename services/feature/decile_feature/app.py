"""The one bootstrap of the feature service."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from decile.events import BarBatch, FeatureBatch
from decile.service import Runtime, create_runtime
from decile_feature import metrics
from decile_feature.engine import Featuriser
from decile_feature.handlers import Deps, on_bars
from decile_feature.rebuild import rebuild
from decile_feature.settings import FeatureSettings


def create_app(settings: FeatureSettings) -> Runtime:
    rt = create_runtime(settings)
    rt.ready("state", False)
    cfg = settings.feature
    holder: dict[str, Any] = {}
    durable = f"feature-bars-{cfg.tf}"

    async def handle(batch: BarBatch) -> None:
        """A bar cross-section of the base timeframe -> features of every symbol."""
        await on_bars(batch, holder["deps"])

    rt.subscribe(handle, family="md", kind="bars", key=cfg.tf, event=BarBatch, stream="MD",
                 durable=durable, batch_size=1, max_wait_s=0.05, ordered=True)
    rt.produces(FeatureBatch, "feat", "batch", "Features of every symbol for one bar close.")

    @rt.on_start
    async def _state() -> None:
        redis = Redis.from_url(settings.redis.url.get_secret_value())
        featuriser = Featuriser()
        if cfg.rebuild:
            n = await rebuild(rt.bus, durable, cfg.tf, featuriser)
            metrics.REBUILT.labels(cfg.tf).set(n)
        holder["deps"] = Deps(rt.bus, redis, settings.redis.key_prefix, cfg, featuriser)
        rt.ready("state")

    @rt.on_stop
    async def _close() -> None:
        if "deps" in holder:
            await holder["deps"].redis.aclose()

    return rt
