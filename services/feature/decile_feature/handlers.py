"""Glue: one BarBatch in, one FeatureBatch out, Redis vectors written, counted."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from decile import obs
from decile.bus import Bus
from decile.events import BarBatch, FeatureBatch
from decile.features import SCHEMA, check_health
from decile.market.bars import Bars
from decile.store.vectors import write_vectors
from decile_feature import metrics
from decile_feature.engine import Featuriser
from decile_feature.settings import FeatureSection

log = obs.get_logger(__name__)


def to_bars(batch: BarBatch) -> Bars:
    ts = np.full(len(batch.symbols), int(batch.bar_time.timestamp() * 1000), dtype=np.int64)
    return Bars.from_ohlcv(batch.symbols, ts, batch.values)


@dataclass
class Deps:
    bus: Bus
    redis: Redis
    key_prefix: str
    cfg: FeatureSection
    featuriser: Featuriser
    window: deque[np.ndarray] = field(default_factory=deque)
    cycles: int = 0


CONTEXT = ("close",)


def feature_batch(batch: BarBatch, symbols: tuple[str, ...], matrix: np.ndarray) -> FeatureBatch:
    """The features plus each symbol's close (context) for the same bar."""
    close_of = dict(zip(batch.symbols, batch.column("close").tolist(), strict=True))
    close = np.array([close_of.get(s, np.nan) for s in symbols], dtype=np.float64)
    return batch.follow(
        FeatureBatch,
        "feat",
        producer="feature",
        tf=batch.tf,
        bar_time=batch.bar_time,
        feature_schema=SCHEMA.version,
        feature_names=SCHEMA.names,
        context_names=CONTEXT,
        symbols=symbols,
        values=np.column_stack([matrix, close]),
        source_id=batch.id,
    )


async def on_bars(batch: BarBatch, deps: Deps) -> None:
    """Featurise a cycle once (a redelivery republishes the same output, state untouched)."""
    start = time.perf_counter()
    symbols, matrix = deps.featuriser.apply(batch.id, to_bars(batch))
    metrics.CYCLE_SECONDS.observe(time.perf_counter() - start)
    out = feature_batch(batch, symbols, matrix)
    await deps.bus.publish(out)
    bar_ms = int(batch.bar_time.timestamp() * 1000)
    await write_vectors(deps.redis, deps.key_prefix, batch.tf, symbols, matrix, SCHEMA.version,
                        bar_ms)
    metrics.CYCLES.labels(batch.tf).inc()
    metrics.SYMBOLS.labels(batch.tf).set(len(symbols))
    watch_health(deps, matrix)


def watch_health(deps: Deps, matrix: np.ndarray) -> None:
    """Every ``health_window`` cycles: constant, all-null or mostly-null features raise a metric."""
    deps.window.append(matrix)
    deps.cycles += 1
    if deps.cycles % deps.cfg.health_window:
        return
    stacked = np.concatenate(list(deps.window))
    deps.window.clear()
    null_rate = np.isnan(stacked).mean(axis=0) if len(stacked) else np.ones(len(SCHEMA.names))
    for name, rate in zip(SCHEMA.names, null_rate.tolist(), strict=True):
        metrics.NULL_RATE.labels(name).set(rate)
    problems = check_health(stacked, SCHEMA.names, max_null_rate=deps.cfg.max_null_rate)
    for r in problems:
        metrics.UNHEALTHY.labels(str(r.values.get("feature", r.gate)), r.code.value).set(1)
    if problems:
        log.warning("feature health", problems=[f"{r.gate}:{r.code.value}" for r in problems][:20])
