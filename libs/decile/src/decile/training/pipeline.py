"""One training run, as ``decile train`` does it: data -> dataset -> per family:
lock, (tune), fit, export, paired evaluation, upload, register as staging.

Nothing here promotes: a new version lands in ``staging`` and production stays
as it was until someone runs ``decile models promote``. A failure at any stage
is recorded in the registry's ``failed_attempts`` with its stage, code,
partial metrics and input fingerprint, and the run goes on with the next
family; the exit status says whether every family succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt

from decile.market.bars import Bars
from decile.market.loaders import demo_data_path, load
from decile.market.timeframes import parse
from decile.registry import (
    ArtifactRef,
    ArtifactStore,
    ModelVersion,
    Registry,
    TrainingInProgress,
    fetch_verified,
)
from decile.store.bars import read_bars
from decile.training.dataset import Dataset, build_dataset, dataset_fingerprint
from decile.training.export import ParityError, predict_onnx, train_family, walk_forward_metrics
from decile.training.models import FAMILIES, FeatureHealthError, LeakageError, TrainConfig
from decile.training.report import auc, pinball
from decile.training.split import Split, chronological_split
from decile.training.tuning import tune
from decile.training.writeup import render_markdown

__all__ = [
    "ALL_FAMILIES",
    "DataSpec",
    "FamilyResult",
    "TrainPlan",
    "TrainingFailed",
    "TrainingRun",
    "attempt",
    "fingerprint_of",
    "load_bars",
    "paired_evaluation",
    "paired_scores",
    "record_attempt",
    "register_version",
    "run_training",
    "upload",
]

ALL_FAMILIES: Final = tuple(FAMILIES)  # the trainer's families, in training order
Step = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where the bars come from: a Parquet/Feather file or directory (``path``), the
    recorder's ``bars`` table (``from_db``), or, with neither, the bundled demo file.
    ``start`` inclusive and ``end`` exclusive bound the bar open time (ISO dates)."""

    path: Path | None = None
    from_db: bool = False
    dsn: str = ""
    tf: str = "5m"
    symbols: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``start`` and ``end`` as UTC datetimes (None when open)."""
        return _when(self.start), _when(self.end)

    def describe(self) -> str:
        where = "postgres:bars" if self.from_db else str(self.path or "bundled demo data")
        return (
            f"{where} tf={self.tf} symbols={','.join(self.symbols or ()) or 'all'} "
            f"start={self.start or '-'} end={self.end or '-'}"
        )


@dataclass(frozen=True, slots=True)
class TrainPlan:
    """What to train. Defaults: every family, the standard 70/15/15 split, no
    walk-forward, no tuning, and at least 2,000 labelled proposals."""

    data: DataSpec = DataSpec()
    families: tuple[str, ...] = ALL_FAMILIES
    config: TrainConfig = field(default_factory=TrainConfig)
    walk_forward: int = 0
    tune_trials: int = 0
    min_rows: int = 2_000
    actor: str = "decile train"

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown family {unknown}; choose from {', '.join(FAMILIES)}")
        if self.walk_forward == 1 or self.walk_forward < 0:
            raise ValueError("walk_forward needs at least 2 folds (or 0 for none)")


@dataclass(frozen=True, slots=True)
class FamilyResult:
    family: str
    version: ModelVersion | None
    failure: dict[str, Any] | None
    seconds: float


@dataclass(slots=True)
class TrainingRun:
    rows: int = 0
    bars: int = 0
    fingerprint: str = ""
    seconds: float = 0.0
    results: list[FamilyResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.version is not None for r in self.results)


class TrainingFailed(Exception):
    """A stage refused: carries what ``failed_attempts`` records."""

    def __init__(self, stage: str, code: str, message: str, partial: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.stage, self.code, self.message = stage, code, message
        self.partial = partial or {}


def steps_per_family(plan: TrainPlan) -> int:
    """Progress ticks per family: lock, fit+export, paired, upload+register (+tune, +wf)."""
    return 4 + (plan.tune_trials > 0) + (plan.walk_forward > 0)


# --------------------------------------------------------------------------- data


async def load_bars(spec: DataSpec) -> Bars:
    """The bars ``spec`` names; raises :class:`TrainingFailed` (stage load)."""
    try:
        if spec.from_db:
            return await _bars_from_db(spec)
        path = spec.path or demo_data_path()
        return load(path, symbols=spec.symbols, start=spec.start, end=spec.end).bars
    except TrainingFailed:
        raise
    except (OSError, ValueError, asyncpg.PostgresError) as err:
        raise TrainingFailed("load", "DATA_LOAD_FAILED", f"{spec.describe()}: {err}") from err


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC) if iso else None


async def _bars_from_db(spec: DataSpec) -> Bars:
    conn = await asyncpg.connect(spec.dsn, timeout=10)
    try:
        names, ts, ohlcv = await read_bars(conn, spec.tf, *spec.bounds(), spec.symbols)
    finally:
        await conn.close()
    if not names:
        return Bars.empty()
    o, h, lo, c, v = (ohlcv[:, i] for i in range(5))
    return Bars.from_arrays(np.asarray(names), ts, o, h, lo, c, v)


def _dataset(bars: Bars, plan: TrainPlan) -> Dataset:
    if len(bars) == 0:
        raise TrainingFailed("load", "NO_DATA", f"no bars in {plan.data.describe()}")
    ds = build_dataset(bars, tf=plan.data.tf)
    if len(ds) < plan.min_rows:
        raise TrainingFailed(
            "dataset",
            "TOO_FEW_ROWS",
            f"{len(ds):,} labelled proposals from {len(bars):,} bars, need >= {plan.min_rows:,}: "
            "use more symbols or a longer window",
            {"dataset_counts": ds.counts},
        )
    return ds


def fingerprint_of(text: str) -> str:
    """sha256 hex of a description: the input fingerprint of a failure before any rows."""
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- one family


def _fit(
    ds: Dataset,
    split: Split,
    family: str,
    plan: TrainPlan,
    out: Path,
    tuned: tuple[TrainConfig, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """train_family with its refusals mapped to failed-attempt stages and codes."""
    config, tuning = tuned or (plan.config, None)
    try:
        return train_family(ds, out, family, config=config, split=split, tuning=tuning)
    except FeatureHealthError as err:
        partial = {"rejections": [r.model_dump(mode="json") for r in err.rejections]}
        raise TrainingFailed("health", "FEATURE_HEALTH", str(err), partial) from err
    except LeakageError as err:
        raise TrainingFailed(
            "leakage", "LEAKAGE_SUSPECTED", str(err), {"offenders": err.offenders}
        ) from err
    except ParityError as err:
        raise TrainingFailed("parity", "ONNX_PARITY_FAILED", str(err)) from err
    except ValueError as err:
        raise TrainingFailed("fit", "TRAINING_REFUSED", str(err)) from err


async def paired_evaluation(
    ds: Dataset,
    split: Split,
    doc: dict[str, Any],
    candidate_onnx: bytes,
    production: ModelVersion | None,
    artifacts: ArtifactStore,
) -> dict[str, Any] | None:
    """Candidate and production scored on the same held-out rows (the candidate's test block).

    See :func:`paired_scores`; the target is the family's own column of ``ds``.
    """
    x, y = ds.x[split.test], ds.target(doc["target"])[split.test]
    return await paired_scores(x, y, doc, candidate_onnx, production, artifacts)


async def paired_scores(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[Any],
    doc: dict[str, Any],
    candidate_onnx: bytes,
    production: ModelVersion | None,
    artifacts: ArtifactStore,
) -> dict[str, Any] | None:
    """Candidate and production scored on the same rows ``x`` against ``y``.

    Both are compared on their raw ONNX outputs: AUC for the binary families
    (calibration is monotone, so it cannot change a ranking), pinball loss for
    the quantile heads. ``None`` when there is no production version;
    ``comparable: False`` with the reason when production was trained on other
    features or, for confirm, another flow (window, baseline, ATR edges).
    """
    if production is None:
        return None
    head = {
        "production_id": str(production.id),
        "production_version": production.version,
        "rows": len(x),
    }
    if production.metrics.get("features") != doc["features"]:
        return {**head, "comparable": False, "reason": "FEATURE_SCHEMA_CHANGED"}
    if production.metrics.get("flow_params") != doc.get("flow_params"):
        return {**head, "comparable": False, "reason": "FLOW_PARAMS_CHANGED"}
    prod_onnx = await fetch_verified(artifacts, production.artifact_ref)
    binary = doc["objective"] == "binary"
    cand = predict_onnx(candidate_onnx, x, binary)
    prod = predict_onnx(prod_onnx, x, binary)
    if binary:
        return {**head, "comparable": True, "candidate": {"auc": auc(y, cand)},
                "production": {"auc": auc(y, prod)}}
    alpha = float(doc["alpha"])
    return {**head, "comparable": True, "candidate": {"pinball": pinball(y, cand, alpha)},
            "production": {"pinball": pinball(y, prod, alpha)}}


def _read_dir(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


async def upload(
    files: dict[str, bytes], family: str, sha: str, artifacts: ArtifactStore
) -> dict[str, ArtifactRef]:
    """Every file of a version, content-addressed under ``family/sha256/name``."""
    return {
        name: await artifacts.put(f"{family}/{sha}/{name}", data) for name, data in files.items()
    }


async def register_version(
    registry: Registry,
    family: str,
    doc: dict[str, Any],
    refs: dict[str, ArtifactRef],
    production: ModelVersion | None,
) -> ModelVersion:
    """Register the uploaded files as a staging version, child of the current production."""
    return await registry.register(
        family,
        schema_version=doc["schema_version"],
        metrics=doc,
        artifact=refs["model.onnx"],
        artifacts=refs,
        data_fingerprint=doc.get("data_fingerprint", ""),
        parent_id=production.id if production else None,
    )


async def train_one(
    ds: Dataset,
    split: Split,
    family: str,
    plan: TrainPlan,
    registry: Registry,
    artifacts: ArtifactStore,
    step: Step,
) -> ModelVersion:
    """Lock, fit, export, compare against production, upload and register one family."""
    async with registry.training_lock(family):
        step(f"{family}: locked")
        with tempfile.TemporaryDirectory(prefix=f"decile-{family}-") as tmp:
            out = Path(tmp)
            tuned = None
            if plan.tune_trials:
                tuned = await asyncio.to_thread(
                    tune, ds, split, family, trials=plan.tune_trials, base=plan.config
                )
                step(f"{family}: tuned ({plan.tune_trials} trials)")
            doc = await asyncio.to_thread(_fit, ds, split, family, plan, out, tuned)
            step(f"{family}: trained ({doc['best_iteration']} trees)")
            if plan.walk_forward:
                doc["walk_forward"] = await asyncio.to_thread(
                    walk_forward_metrics, ds, family, n_windows=plan.walk_forward,
                    config=plan.config,
                )
                step(f"{family}: walk-forward ({plan.walk_forward} folds)")
            onnx_bytes = (out / "model.onnx").read_bytes()
            production = await registry.production(family)
            paired = await paired_evaluation(ds, split, doc, onnx_bytes, production, artifacts)
            if paired is not None:
                doc["paired"] = paired
            (out / "metrics.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
            (out / "report.md").write_text(render_markdown(doc), encoding="utf-8")
            step(f"{family}: compared with production")
            files = await asyncio.to_thread(_read_dir, out)
            refs = await upload(files, family, doc["model_sha256"], artifacts)
        version = await register_version(registry, family, doc, refs, production)
        step(f"{family}: registered {version.label}")
        return version


# --------------------------------------------------------------------------- the run


async def run_training(
    plan: TrainPlan,
    registry: Registry,
    artifacts: ArtifactStore,
    step: Step = lambda _: None,
) -> TrainingRun:
    """Train every family in ``plan``; each failure is recorded, none stops the others."""
    run = TrainingRun()
    t0 = time.perf_counter()
    input_fp = fingerprint_of(plan.data.describe())
    try:
        bars = await load_bars(plan.data)
        run.bars = len(bars)
        step(f"loaded {len(bars):,} bars")
        ds = await asyncio.to_thread(_dataset, bars, plan)
        run.rows = len(ds)
        step(f"dataset: {len(ds):,} labelled proposals")
    except TrainingFailed as err:
        for family in plan.families:
            run.results.append(await record_attempt(registry, family, err, input_fp, 0.0))
        run.seconds = time.perf_counter() - t0
        return run
    run.fingerprint = dataset_fingerprint(ds)
    # one split for every family: the same rows are train, validation and test for all
    split = chronological_split(ds.ts, horizon=ds.label_config.horizon, bar_ms=parse(ds.tf).ms)
    for family in plan.families:
        work = partial(train_one, ds, split, family, plan, registry, artifacts, step)
        run.results.append(await attempt(family, work, registry, run.fingerprint))
    run.seconds = time.perf_counter() - t0
    return run


async def attempt(
    family: str,
    work: Callable[[], Awaitable[ModelVersion]],
    registry: Registry,
    fingerprint: str,
) -> FamilyResult:
    """Run one family's ``work``; a failure is recorded in the registry, never raised."""
    t = time.perf_counter()
    try:
        version = await work()
        return FamilyResult(family, version, None, time.perf_counter() - t)
    except TrainingFailed as err:
        failed = err
    except TrainingInProgress as err:
        failed = TrainingFailed("lock", "TRAINING_IN_PROGRESS", str(err))
    except Exception as err:  # recorded, never lost; the next family still trains
        failed = TrainingFailed(
            "fit", "TRAINING_ERROR", f"{type(err).__name__}: {err}",
            {"traceback": traceback.format_exc(limit=8)},
        )
    return await record_attempt(registry, family, failed, fingerprint, time.perf_counter() - t)


async def record_attempt(
    registry: Registry, family: str, err: TrainingFailed, fingerprint: str, seconds: float
) -> FamilyResult:
    """Keep ``err`` in the registry's failed attempts; the family's result in the run."""
    attempt = await registry.record_failure(
        family,
        stage=err.stage,
        code=err.code,
        message=err.message,
        partial_metrics=err.partial,
        input_fingerprint=fingerprint,
    )
    failure = {"stage": err.stage, "code": err.code, "message": err.message, "id": str(attempt.id)}
    return FamilyResult(family, None, failure, seconds)
