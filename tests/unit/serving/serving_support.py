"""Tiny real models for the serving tests (a plain module: ``import serving_support``).

They are trained and exported by the real ``train_family`` on rows of real
demo features (so their inputs have realistic ranges and the strategy rules
fire on cross-sections drawn from the same data), with a planted label so
the entry model ranks something. A handful of seconds per session.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from decile.features import SCHEMA, SCHEMA_VERSION, compute_offline
from decile.features.offline import OfflineFeatures
from decile.market.bars import Bars
from decile.market.loaders import load_demo
from decile.registry import ArtifactRef, ModelVersion
from decile.strategies import STRATEGY_IDS
from decile.training.dataset import EXTRA_FEATURES, Dataset
from decile.training.export import train_family
from decile.training.labels import LabelConfig
from decile.training.models import TrainConfig

FAMILIES = ("entry", "risk", "rr", "offset")
CONFIG = TrainConfig(num_boost_round=30, early_stopping_rounds=10)
BAR_MS = 300_000
DEMO_BARS = 2500


def demo_window(n_bars: int = DEMO_BARS) -> tuple[OfflineFeatures, Bars]:
    """The last ``n_bars`` bar times of the bundled demo data and their features, sorted."""
    bars = load_demo()
    times = np.unique(bars.ts)
    sub = bars.between(int(times[-n_bars]), None)
    return compute_offline(sub).sorted(), sub


def complete_rows(feats: OfflineFeatures) -> np.ndarray:
    return np.flatnonzero(np.isfinite(feats.values).all(axis=1))


def schema_dataset(feats: OfflineFeatures, n_rows: int = 8000, seed: int = 0) -> Dataset:
    """Real complete feature rows (sampled), random side/strategy, planted labels."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(complete_rows(feats), n_rows)
    xf = feats.values[pick]
    side = np.where(rng.random(n_rows) < 0.5, 1, -1).astype(np.int8)
    strat = rng.integers(0, len(STRATEGY_IDS), n_rows).astype(np.int16)

    def z(name: str) -> np.ndarray:
        col = xf[:, SCHEMA.index(name)]
        return (col - col.mean()) / (col.std() + 1e-12)

    signal = 0.8 * side * z("ret_z_48") - 0.5 * z("rsi_14") * side + 0.3 * (strat == 1)
    win = (rng.random(n_rows) < 1 / (1 + np.exp(-signal))).astype(np.int8)
    n_sym = 20
    x = np.hstack([xf, side[:, None].astype(np.float64), strat[:, None].astype(np.float64)])
    return Dataset(
        x=np.asfortranarray(x),
        feature_names=tuple(SCHEMA.names) + EXTRA_FEATURES,
        schema_version=SCHEMA_VERSION,
        tf="5m",
        symbols=tuple(f"S{i}/USDT" for i in range(n_sym)),
        code=(np.arange(n_rows) % n_sym).astype(np.int32),
        ts=1_700_000_000_000 + (np.arange(n_rows) // n_sym).astype(np.int64) * BAR_MS,
        strategy=strat,
        strategy_ids=STRATEGY_IDS,
        side=side,
        win=win,
        realised_r=np.where(win == 1, 1.5, -1.0) + 0.2 * rng.standard_normal(n_rows),
        mae_atr=np.abs(rng.standard_normal(n_rows)) + 0.3 * np.maximum(z("tr_atr_14"), 0),
        best_offset=rng.choice([-0.25, -0.15, 0.0, 0.15, 0.25], n_rows),
        label_config=LabelConfig(),
        counts={"rows": n_rows},
    )


def train_all(ds: Dataset, root: Path) -> dict[str, Path]:
    """``model.onnx`` + ``metrics.json`` per family under ``root/<family>``."""
    out = {}
    for family in FAMILIES:
        d = root / family
        train_family(ds, d, family, config=CONFIG, report=False)
        out[family] = d
    return out


def version_of(model_dir: Path, family: str, uri: str | None = None) -> ModelVersion:
    """A ModelVersion as the registry would return it for this directory's model."""
    data = (model_dir / "model.onnx").read_bytes()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    ref = ArtifactRef.of(uri or (model_dir / "model.onnx").as_uri(), data)
    return ModelVersion(
        id=uuid.uuid4(),
        family=family,
        version="1.0.0",
        status="production",
        parent_id=None,
        schema_version=metrics["schema_version"],
        metrics=metrics,
        artifact_uri=ref.uri,
        sha256=ref.sha256,
        size_bytes=ref.size,
        artifacts={"model.onnx": ref},
        data_fingerprint=metrics["data_fingerprint"],
        created_at=datetime.now(UTC),
    )


def with_bytes(version: ModelVersion, data: bytes, **metrics: Any) -> ModelVersion:
    """``version`` re-pointed at other model bytes (sha256 and metrics["model_sha256"] follow)."""
    sha = hashlib.sha256(data).hexdigest()
    doc = {**version.metrics, "model_sha256": sha, **metrics}
    return replace(version, sha256=sha, size_bytes=len(data), metrics=doc)


def with_metrics(version: ModelVersion, **metrics: Any) -> ModelVersion:
    return replace(version, metrics={**version.metrics, **metrics})


def linear_onnx(
    width: int,
    weights: np.ndarray | None = None,
    *,
    input_type: int = TensorProto.FLOAT,
    out_width: int = 1,
) -> bytes:
    """A hand-made graph ``output = cast(input) @ W`` (a stand-in for odd exports)."""
    w = np.full((width, out_width), 0.01, dtype=np.float32) if weights is None else weights
    nodes = [helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT)]
    nodes.append(helper.make_node("MatMul", ["xf", "w"], ["variable"]))
    graph = helper.make_graph(
        nodes,
        "handmade",
        [helper.make_tensor_value_info("input", input_type, [None, width])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, out_width])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    out: bytes = model.SerializeToString()
    return out


def pseudo_cross_section(
    feats: OfflineFeatures, n: int = 1500, seed: int = 1
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """``n`` complete demo rows (many bar times) as one big cross-section of made-up symbols."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(complete_rows(feats), n, replace=False)
    symbols = tuple(f"P{i:04d}/USDT" for i in range(n))
    return feats.values[rows].copy(), tuple(feats.names), symbols
