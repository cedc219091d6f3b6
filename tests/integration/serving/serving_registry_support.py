"""Registry helpers for the serving integration tests (a plain module)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from decile.features import SCHEMA, SCHEMA_VERSION
from decile.registry import ArtifactRef, ArtifactStore, ModelVersion, Registry, watch_changes
from decile.strategies import STRATEGY_IDS
from decile.training.dataset import EXTRA_FEATURES, Dataset
from decile.training.labels import LabelConfig


def small_metrics(auc: float = 0.62, over: ModelVersion | None = None) -> dict[str, Any]:
    """Enough for the gate; with ``over``, a paired evaluation beating that production."""
    doc: dict[str, Any] = {"family": "entry", "metrics": {"test": {"auc": auc, "ece": 0.02}}}
    if over is not None:
        doc["paired"] = {
            "production_id": str(over.id), "production_version": over.version, "rows": 1000,
            "comparable": True, "candidate": {"auc": auc}, "production": {"auc": auc - 0.01},
        }
    return doc


async def add(
    reg: Registry, *, auc: float = 0.62, over: ModelVersion | None = None
) -> ModelVersion:
    """A staging entry version with small (fake) artifact references."""
    data = f"onnx {auc} {np.random.default_rng().random()}".encode()
    ref = ArtifactRef.of(f"file:///models/{hashlib.sha256(data).hexdigest()}/model.onnx", data)
    return await reg.register(
        "entry", schema_version="s1", metrics=small_metrics(auc, over), artifact=ref,
        artifacts={"model.onnx": ref}, data_fingerprint="fp",
    )


class Listener:
    """What a ``watch_changes`` task heard, and how many times it (re)connected."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.connects = 0
        self.connected = asyncio.Event()

    async def on_connect(self) -> None:
        self.connects += 1
        self.connected.set()

    async def next(self, limit_s: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), limit_s)

    async def reconnected(self, count: int, limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while self.connects < count:
                self.connected.clear()
                await self.connected.wait()


@asynccontextmanager
async def listening(
    dsn: str, source: AsyncIterator[dict[str, Any]] | None = None, **kw: Any
) -> AsyncIterator[Listener]:
    """Run a listener in a task; yields once LISTEN is active."""
    heard = Listener()
    changes = source if source is not None else watch_changes(
        dsn, on_connect=heard.on_connect, **kw
    )

    async def run() -> None:
        async for change in changes:
            await heard.queue.put(change)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(heard.connected.wait(), 10)
        yield heard
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def random_schema_dataset(n_rows: int = 4000, seed: int = 0) -> Dataset:
    """Standard-normal schema features, random side/strategy, a planted entry label."""
    rng = np.random.default_rng(seed)
    nf = len(SCHEMA.names)
    xf = rng.standard_normal((n_rows, nf))
    side = np.where(rng.random(n_rows) < 0.5, 1, -1).astype(np.int8)
    strat = rng.integers(0, len(STRATEGY_IDS), n_rows).astype(np.int16)
    win = (rng.random(n_rows) < 1 / (1 + np.exp(-(xf[:, 0] - 0.7 * xf[:, 1])))).astype(np.int8)
    return Dataset(
        x=np.asfortranarray(np.hstack([xf, side[:, None], strat[:, None]]).astype(np.float64)),
        feature_names=tuple(SCHEMA.names) + EXTRA_FEATURES,
        schema_version=SCHEMA_VERSION,
        tf="5m",
        symbols=tuple(f"S{i}/USDT" for i in range(20)),
        code=(np.arange(n_rows) % 20).astype(np.int32),
        ts=1_700_000_000_000 + (np.arange(n_rows) // 20).astype(np.int64) * 300_000,
        strategy=strat,
        strategy_ids=STRATEGY_IDS,
        side=side,
        win=win,
        realised_r=np.where(win == 1, 1.0, -1.0),
        mae_atr=np.abs(rng.standard_normal(n_rows)),
        best_offset=np.zeros(n_rows),
        label_config=LabelConfig(),
        counts={"rows": n_rows},
    )


async def upload_and_register(
    reg: Registry, store: ArtifactStore, model_dir: Path, family: str = "entry"
) -> ModelVersion:
    """What the training pipeline does with a model directory: upload, then register."""
    doc = json.loads((model_dir / "metrics.json").read_text())
    onnx_ref = await store.put(f"{family}/{doc['model_sha256']}/model.onnx",
                               (model_dir / "model.onnx").read_bytes())
    metrics_ref = await store.put(f"{family}/{doc['model_sha256']}/metrics.json",
                                  (model_dir / "metrics.json").read_bytes())
    return await reg.register(
        family, schema_version=doc["schema_version"], metrics=doc, artifact=onnx_ref,
        artifacts={"model.onnx": onnx_ref, "metrics.json": metrics_ref},
        data_fingerprint=doc["data_fingerprint"],
    )
