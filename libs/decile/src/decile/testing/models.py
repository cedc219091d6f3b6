"""Tiny but real model versions for tests: trained, exported, uploaded, registered, promoted.

Every family is trained by the real :func:`decile.training.export.train_family`
(LightGBM -> ONNX, parity-checked, ``metrics.json`` with goldens, calibration
and the drift reference) on REAL feature rows of the bundled demo data, in the
full serving column order (the schema's features, then ``side`` and
``strategy_code``), so :func:`decile.serving.load_version` accepts them
exactly as it would accept a production model.

The labels are planted (a known function of real features plus seeded noise)
rather than the market's own: on one to four weeks of demo bars the real ``rr`` label
never beats its best constant and the entry AUC hovers around the 0.55 floor,
so the promotion gate (which has no switch for the quantile floor) would
refuse them. With planted labels every family clears the default floors on
its own metrics. What the default gate still refuses in tests is a *second*
version over an existing production when it is not better (the paired check):
build the registry with :data:`PERMISSIVE_GATE` for that::

    async with Registry.connect(pg_dsn, gate=PERMISSIVE_GATE) as reg:
        dirs = train_tiny(tmp_path / "models")   # four families: ~9 s cold, ~2 s warm
        v1 = await register_dir(reg, store, "entry", dirs["entry"])
        await promote_to(reg, v1.id, "production")

The confirm family has its own, numpy-only builder: :func:`train_tiny_confirm`
fits the real logistic confirm model (:func:`decile.confirm.fit_confirm`,
exported by :func:`decile.confirm.export.export_confirm`) on planted flow rows
under the fleet's flow settings, in well under a second.

Deterministic: the same arguments give the same bytes (same ``model_sha256``)
in every process (``to_onnx`` sorts the opset list, whose converter order
follows the hash seed), so a session-scoped fixture or a directory reused across
runs is safe; :func:`train_tiny` reuses a directory that already holds a model
trained with the same settings. Cost: about 2 s of training for the four
families, plus once per process the demo features (~1 s) and the LightGBM /
onnxmltools import (several seconds cold), done on first use, not when this
module is imported.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from uuid import UUID

import numpy as np
import numpy.typing as npt

from decile.registry import ArtifactRef, ArtifactStore, GateConfig, ModelVersion, Registry
from decile.serving.scoring import SERVED_FAMILIES

if TYPE_CHECKING:
    from decile.confirm import ConfirmDataset
    from decile.training.dataset import Dataset
    from decile.training.models import TrainConfig

__all__ = [
    "FAMILIES",
    "PERMISSIVE_GATE",
    "TINY_BARS",
    "TINY_ROWS",
    "promote_to",
    "register_dir",
    "tiny_config",
    "tiny_confirm_dataset",
    "tiny_dataset",
    "train_tiny",
    "train_tiny_confirm",
]

FAMILIES: Final = SERVED_FAMILIES
# The last TINY_BARS bar times of the demo file (20 pairs), TINY_ROWS complete rows sampled.
TINY_BARS: Final = 1500
TINY_ROWS: Final = 6000
_SAMPLE_SEED: Final = 20210201

# Floors and paired tolerances opened wide: a test that promotes version after version
# needs no candidate to beat the last one. The quantile floor (beat the best constant)
# has no switch; the planted labels clear it.
PERMISSIVE_GATE: Final = GateConfig(
    min_auc=0.0,
    max_ece=1.0,
    paired_auc_tolerance=1.0,
    paired_pinball_ratio=1e9,
    allow_incomparable=True,
)


def tiny_config(seed: int = 0) -> TrainConfig:
    """30 rounds at most, early stopping after 10; ``seed`` varies the bagging only,
    so two seeds give two different, equally valid models on the same rows."""
    from decile.training.models import TrainConfig

    return TrainConfig(num_boost_round=30, early_stopping_rounds=10, seed=7 + seed)


@lru_cache(maxsize=1)
def _feature_rows() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64],
                             npt.NDArray[np.int32], tuple[str, ...]]:
    """Complete real feature rows of the demo window, in (ts, symbol) order."""
    from decile.features import compute_offline
    from decile.market.loaders import load_demo

    bars = load_demo()
    times = np.unique(bars.ts)
    feats = compute_offline(bars.between(int(times[-TINY_BARS]), None)).sorted()
    complete = np.flatnonzero(np.isfinite(feats.values).all(axis=1))
    rng = np.random.default_rng(_SAMPLE_SEED)
    pick = np.sort(rng.choice(complete, min(TINY_ROWS, len(complete)), replace=False))
    order = pick[np.lexsort((feats.code[pick], feats.ts[pick]))]
    return (
        np.asarray(feats.values[order], dtype=np.float64),
        np.asarray(feats.ts[order], dtype=np.int64),
        np.asarray(feats.code[order], dtype=np.int32),
        tuple(feats.symbols),
    )


@lru_cache(maxsize=8)
def tiny_dataset(exclude: tuple[str, ...] = ()) -> Dataset:
    """Real demo feature rows with planted labels; ``exclude`` drops serving columns.

    Labels (seeded, so the dataset is the same in every process): ``win`` is a
    logistic of side-signed ``ret_z_48`` and ``rsi_14`` plus a strategy effect;
    ``realised_r`` follows the same signal and ``win``; ``mae_atr`` grows with ``tr_atr_14``;
    ``best_offset`` follows ``bb_pctb_20``. Dropping a column (``exclude``) gives
    a model of the wrong input width for refusal tests.
    """
    from decile.features import SCHEMA, SCHEMA_VERSION
    from decile.strategies import STRATEGY_IDS
    from decile.training.dataset import EXTRA_FEATURES, Dataset
    from decile.training.labels import LabelConfig

    xf, ts, code, symbols = _feature_rows()
    n = len(ts)
    rng = np.random.default_rng(_SAMPLE_SEED + 1)
    side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    strat = rng.integers(0, len(STRATEGY_IDS), n).astype(np.int16)

    def z(name: str) -> npt.NDArray[np.float64]:
        col = xf[:, SCHEMA.index(name)]
        return np.asarray((col - col.mean()) / (col.std() + 1e-12), dtype=np.float64)

    signal = 0.9 * side * z("ret_z_48") - 0.6 * side * z("rsi_14") + 0.3 * (strat == 1)
    win = (rng.random(n) < 1.0 / (1.0 + np.exp(-signal))).astype(np.int8)
    names = tuple(SCHEMA.names) + EXTRA_FEATURES
    x = np.hstack([xf, side[:, None].astype(np.float64), strat[:, None].astype(np.float64)])
    unknown = set(exclude) - set(names)
    if unknown:
        raise ValueError(f"UNKNOWN_FEATURE: exclude={sorted(unknown)}")
    keep = [i for i, name in enumerate(names) if name not in exclude]
    return Dataset(
        x=np.asfortranarray(x[:, keep]),
        feature_names=tuple(names[i] for i in keep),
        schema_version=SCHEMA_VERSION,
        tf="5m",
        symbols=symbols,
        code=code,
        ts=ts,
        strategy=strat,
        strategy_ids=STRATEGY_IDS,
        side=side,
        win=win,
        realised_r=0.6 * signal + 0.3 * (win - 0.5) + 0.4 * rng.standard_normal(n),
        mae_atr=np.abs(rng.standard_normal(n)) * 0.5 + 0.4 * np.maximum(z("tr_atr_14") + 1, 0),
        best_offset=np.clip(0.1 * z("bb_pctb_20") + 0.15 * rng.standard_normal(n), -0.5, 0.5),
        label_config=LabelConfig(),
        counts={"rows": n},
    )


def _same_model(model_dir: Path, family: str, config: TrainConfig, features: list[str]) -> bool:
    """The directory already holds this family trained with these settings and columns."""
    try:
        doc = json.loads((model_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        (model_dir / "model.onnx").is_file()
        and doc.get("family") == family
        and doc.get("features") == features
        and doc.get("hyperparameters", {}).get("config") == json.loads(
            json.dumps(config.to_dict())
        )
    )


def train_tiny(
    root: Path | str,
    families: Sequence[str] = FAMILIES,
    *,
    seed: int = 0,
    exclude_features: Sequence[str] = (),
) -> dict[str, Path]:
    """Train each family into ``root/<family>`` (``model.onnx`` + ``metrics.json``).

    ``seed`` gives another valid model of the same rows (a second version to
    promote over the first, or to roll back from); ``exclude_features`` trains on
    fewer columns (a model the serving side must refuse). No report (fast).
    A directory already holding the same training is reused as is.
    """
    from decile.training.export import train_family

    ds = tiny_dataset(tuple(exclude_features))
    config = tiny_config(seed)
    out: dict[str, Path] = {}
    for family in families:
        model_dir = Path(root) / family
        if not _same_model(model_dir, family, config, list(ds.feature_names)):
            train_family(ds, model_dir, family, config=config, report=False)
        out[family] = model_dir
    return out


@lru_cache(maxsize=1)
def tiny_confirm_dataset() -> ConfirmDataset:
    """3,000 planted flow rows, one per 5m bar, under the fleet's flow settings.

    The label follows ``px_vs_entry_atr`` (plus seeded noise): the fitted model
    clears the default gate floors (test AUC ~0.84, ECE ~0.03). Every version
    fitted on it is scored on the same rows, so a paired evaluation is possible.
    """
    from decile.confirm import FLOW_FEATURES, ConfirmConfig, ConfirmDataset

    n = 3000
    rng = np.random.default_rng(_SAMPLE_SEED + 2)
    px = rng.normal(0.0, 1.0, n)
    bucket = rng.integers(0, 3, n).astype(np.int64)
    x = np.column_stack([
        px, rng.uniform(0, 1, n), rng.normal(0, 1, n), px + rng.normal(0, 0.5, n),
        bucket.astype(np.float64), rng.normal(0, 1, n),
    ])
    r = np.where(px + rng.normal(0.0, 0.8, n) > 0, 1.5, -1.0)
    return ConfirmDataset(
        x=x, y=(r >= 0).astype(np.int8), realised_r=r,
        ts=1_700_000_000_000 + 300_000 * np.arange(n, dtype=np.int64), atr_bucket=bucket,
        candidate_ids=tuple(f"c{i}" for i in range(n)), tf="5m", theta=0.0,
        flow_params=ConfirmConfig.fleet().flow_params(), counts={"rows": n},
        feature_names=FLOW_FEATURES,
    )


def train_tiny_confirm(root: Path | str, *, seed: int = 0) -> Path:
    """A confirm version in ``root/confirm`` (``model.onnx`` + ``metrics.json``).

    ``seed`` changes the L2 penalty only: another valid model of the same rows.
    """
    from decile.confirm import FitConfig, confirm_split, fit_confirm
    from decile.confirm.export import export_confirm

    ds = tiny_confirm_dataset()
    split = confirm_split(ds)
    model = fit_confirm(ds, split, FitConfig(l2=1.0 + 10.0 * seed))
    data, doc = export_confirm(model, ds, split, code_commit="test")
    out = Path(root) / "confirm"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(data)
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    return out


async def _paired(
    registry: Registry, store: ArtifactStore, family: str, doc: dict[str, Any], onnx: bytes
) -> tuple[dict[str, Any] | None, UUID | None]:
    """The pipeline's paired evaluation against the current production, on the tiny rows
    (the confirm family: on :func:`tiny_confirm_dataset`'s test block).

    ``None`` without a production version, or when the candidate's columns are
    not a tiny dataset's (the gate then refuses PAIRED_EVALUATION_MISSING). A
    candidate that cannot be scored is recorded ``comparable: False``.
    """
    from decile.market.timeframes import parse
    from decile.serving import SERVING_FEATURES
    from decile.training.pipeline import paired_evaluation, paired_scores
    from decile.training.split import chronological_split

    production = await registry.production(family)
    if production is None:
        return None, None
    if family == "confirm":
        from decile.confirm import confirm_split

        cds = tiny_confirm_dataset()
        test = confirm_split(cds).test
        paired = await paired_scores(cds.x[test], cds.y[test], doc, onnx, production, store)
        return paired, production.id
    exclude = tuple(n for n in SERVING_FEATURES if n not in doc["features"])
    if [n for n in SERVING_FEATURES if n not in exclude] != doc["features"]:
        return None, production.id
    ds = await asyncio.to_thread(tiny_dataset, exclude)
    split = chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=parse(ds.tf).ms)
    try:
        paired = await paired_evaluation(ds, split, doc, onnx, production, store)
    # a deliberately broken candidate (wrong ONNX width...) cannot be scored: ONNX Runtime
    # raises its own classes. Recorded as not comparable: PERMISSIVE_GATE lets it through.
    except Exception as err:
        paired = {
            "production_id": str(production.id), "production_version": production.version,
            "comparable": False, "reason": f"PAIRED_EVALUATION_FAILED: {err}"[:300],
        }
    return paired, production.id


async def register_dir(
    registry: Registry, store: ArtifactStore, family: str, model_dir: Path | str
) -> ModelVersion:
    """Upload every file of ``model_dir`` and register it as staging, as the pipeline does.

    Keys are content-addressed, ``<family>/<model sha256>/<file name>``. When the
    family has a production version, the pipeline's paired evaluation against it
    is added to the registered metrics (and to the uploaded ``metrics.json``) and
    the production version becomes the parent.
    """
    path = Path(model_dir)
    files = await asyncio.to_thread(
        lambda: {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
    )
    doc: dict[str, Any] = json.loads(files["metrics.json"])
    paired, parent = await _paired(registry, store, family, doc, files["model.onnx"])
    if paired is not None:
        doc["paired"] = paired
        files["metrics.json"] = json.dumps(doc, indent=2, allow_nan=False).encode()
    sha = doc["model_sha256"]
    refs: dict[str, ArtifactRef] = {
        name: await store.put(f"{family}/{sha}/{name}", data) for name, data in files.items()
    }
    return await registry.register(
        family,
        schema_version=doc["schema_version"],
        metrics=doc,
        artifact=refs["model.onnx"],
        artifacts=refs,
        data_fingerprint=doc.get("data_fingerprint", ""),
        parent_id=parent,
    )


async def promote_to(
    registry: Registry,
    ref: str | UUID,
    status: Literal["shadow", "production"],
    *,
    actor: str = "test",
) -> ModelVersion:
    """Move ``ref`` to ``status`` through the registry's gate, as few steps as needed.

    staging -> shadow; shadow -> production; staging -> production directly
    (``skip_shadow``, so an occupied shadow slot does not get in the way).
    Already there: returned unchanged. Archived: ``PromotionRefused``
    (INVALID_TRANSITION; restore it with ``registry.rollback``).
    """
    version = await registry.get(ref)
    if version.status == status:
        return version
    skip = status == "production" and version.status == "staging"
    return await registry.promote(
        version.id, status, actor=actor, reason="test", skip_shadow=skip
    )
