"""``decile train --family confirm``: the confirm model from production outcomes.

Recorded candidates and the realised R of the trade each one led to
(:mod:`decile.training.outcomes`), plus the ``window_tf`` bars of their
windows, go through :func:`decile.confirm.build_confirm_dataset` (the
service's own window, so training features are serving features), the
chronological embargoed :func:`~decile.confirm.confirm_split`,
:func:`~decile.confirm.fit_confirm` and
:func:`~decile.confirm.export.export_confirm`. The version is registered as
staging with ``model.onnx`` and ``metrics.json``, compared with the current
production confirm version on the same test rows; promotion is the usual
``decile models promote`` through the gate.

Any refusal (no candidates, no outcomes, too few rows, one class in a block,
ONNX parity) is a recorded failed attempt with a stable code, like the other
families', and leaves production as it is.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import asyncpg

from decile.confirm.config import ConfirmConfig
from decile.confirm.dataset import (
    ConfirmDataset,
    build_confirm_dataset,
    confirm_fingerprint,
    confirm_split,
)
from decile.confirm.export import ConfirmParityError, export_confirm
from decile.confirm.model import FitConfig, fit_confirm
from decile.registry import ArtifactStore, ModelVersion, Registry
from decile.training.outcomes import read_recorded, read_window_bars, window_spans
from decile.training.pipeline import (
    DataSpec,
    Step,
    TrainingFailed,
    TrainingRun,
    attempt,
    fingerprint_of,
    paired_scores,
    record_attempt,
    register_version,
    upload,
)
from decile.training.provenance import code_commit
from decile.training.split import Split

__all__ = [
    "CONFIRM_MIN_ROWS",
    "CONFIRM_STEPS",
    "FAMILY",
    "ConfirmPlan",
    "load_confirm_dataset",
    "run_confirm",
]

FAMILY: Final = "confirm"
CONFIRM_MIN_ROWS: Final = 200
"""Fewest rows to fit on: 70/15/15 leaves about 30 test rows, the least an AUC means much at.
Rows are traded candidates only, so far fewer than the LightGBM families' 2,000. The
promotion gate's ECE <= 0.05 needs far more: a 10-bin ECE on a few hundred test rows is
mostly sampling noise (planted data: ~0.1 at 800 rows, ~0.035 at 4,000)."""
CONFIRM_STEPS: Final = 6  # progress ticks: loaded, dataset, locked, trained, compared, registered


@dataclass(frozen=True, slots=True)
class ConfirmPlan:
    """What to train the confirm model on.

    ``data``: the database and the candidates' timeframe (``tf``), symbols and
    event-time bounds (``from_db`` is implied; ``path`` is not used).
    Defaults: the fleet's flow (:meth:`ConfirmConfig.fleet`: 5m window of 1
    bar, 30 bars of baseline), ``theta`` 0.0 (label: the trade did not lose),
    the default :class:`FitConfig` (L2 1.0, Platt, 6-bar embargo) and at least
    :data:`CONFIRM_MIN_ROWS` rows.
    """

    data: DataSpec
    config: ConfirmConfig = field(default_factory=ConfirmConfig.fleet)
    theta: float = 0.0
    fit: FitConfig = field(default_factory=FitConfig)
    min_rows: int = CONFIRM_MIN_ROWS

    def __post_init__(self) -> None:
        if not math.isfinite(self.theta):
            raise ValueError(f"theta must be finite, got {self.theta}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")

    def describe(self) -> str:
        flow = json.dumps(self.config.flow_params(), sort_keys=True)
        return f"postgres:events+bars {self.data.describe()} theta={self.theta} flow={flow}"


async def load_confirm_dataset(plan: ConfirmPlan) -> tuple[ConfirmDataset, dict[str, Any]]:
    """The dataset and what the load found (``source``); :class:`TrainingFailed` on refusal."""
    try:
        conn = await asyncpg.connect(plan.data.dsn, timeout=10)
        try:
            start, end = plan.data.bounds()
            recorded = await read_recorded(
                conn, tf=plan.data.tf, start=start, end=end, symbols=plan.data.symbols
            )
            traded = [c for c in recorded.candidates if c.id in recorded.outcomes]
            spans = window_spans(traded, plan.config)
            bars = await read_window_bars(conn, plan.config.window_tf.value, spans)
        finally:
            await conn.close()
    except (OSError, ValueError, asyncpg.PostgresError) as err:
        raise TrainingFailed("load", "DATA_LOAD_FAILED", f"{plan.describe()}: {err}") from err
    source = {"describe": plan.describe(), "window_bars": len(bars), **recorded.counts}
    if not recorded.candidates:
        raise TrainingFailed(
            "load", "NO_DATA",
            f"no readable {plan.data.tf} CandidateSignal events in {plan.data.describe()}",
            {"source": source},
        )
    if not traded:
        raise TrainingFailed(
            "dataset", "NO_OUTCOMES",
            f"{len(recorded.candidates):,} candidates but none has a closed trade on its side "
            f"(trades={recorded.counts['trades']}, unlinked={recorded.counts['unlinked']}, "
            f"other_side={recorded.counts['other_side']}): let the fleet trade first",
            {"source": source},
        )
    try:
        ds = await asyncio.to_thread(
            build_confirm_dataset, recorded.candidates, recorded.outcomes, bars, plan.config,
            theta=plan.theta, htf_trend_pct=recorded.htf_trend_pct,
        )
    except ValueError as err:
        raise TrainingFailed("dataset", "DATASET_REFUSED", str(err), {"source": source}) from err
    if len(ds) < plan.min_rows:
        raise TrainingFailed(
            "dataset", "TOO_FEW_ROWS",
            f"{len(ds):,} confirm rows (traded candidates with a complete window), "
            f"need >= {plan.min_rows:,}: wait for more closed trades or widen --start/--end "
            f"(dataset {ds.counts})",
            {"dataset_counts": ds.counts, "source": source},
        )
    return ds, source


def _fit(ds: ConfirmDataset, plan: ConfirmPlan) -> tuple[bytes, dict[str, Any], Split]:
    """Split, fit, export; the refusals mapped to failed-attempt stages and codes."""
    try:
        split = confirm_split(ds, horizon=plan.fit.horizon)
        model = fit_confirm(ds, split, plan.fit)
        data, doc = export_confirm(model, ds, split, code_commit=code_commit())
    except ConfirmParityError as err:
        raise TrainingFailed("parity", "ONNX_PARITY_FAILED", str(err)) from err
    except ValueError as err:
        raise TrainingFailed(
            "fit", "TRAINING_REFUSED", str(err), {"dataset_counts": ds.counts}
        ) from err
    return data, doc, split


async def train_confirm(
    ds: ConfirmDataset,
    source: dict[str, Any],
    plan: ConfirmPlan,
    registry: Registry,
    artifacts: ArtifactStore,
    step: Step,
) -> ModelVersion:
    """Lock, fit, export, compare against production, upload and register."""
    async with registry.training_lock(FAMILY):
        step(f"{FAMILY}: locked")
        onnx_bytes, doc, split = await asyncio.to_thread(_fit, ds, plan)
        doc["source"] = source
        step(f"{FAMILY}: trained ({doc['model']['iterations']} Newton steps)")
        production = await registry.production(FAMILY)
        x, y = ds.x[split.test], ds.y[split.test]
        paired = await paired_scores(x, y, doc, onnx_bytes, production, artifacts)
        if paired is not None:
            doc["paired"] = paired
        step(f"{FAMILY}: compared with production")
        files = {
            "model.onnx": onnx_bytes,
            "metrics.json": json.dumps(doc, indent=2, allow_nan=False).encode(),
        }
        refs = await upload(files, FAMILY, doc["model_sha256"], artifacts)
        version = await register_version(registry, FAMILY, doc, refs, production)
        step(f"{FAMILY}: registered {version.label}")
        return version


async def run_confirm(
    plan: ConfirmPlan,
    registry: Registry,
    artifacts: ArtifactStore,
    step: Step = lambda _: None,
) -> TrainingRun:
    """Load, build, train and register the confirm family; a failure is recorded, not raised."""
    run = TrainingRun()
    t0 = time.perf_counter()
    try:
        ds, source = await load_confirm_dataset(plan)
    except TrainingFailed as err:
        fp = fingerprint_of(plan.describe())
        run.results.append(await record_attempt(registry, FAMILY, err, fp, 0.0))
        run.seconds = time.perf_counter() - t0
        return run
    run.rows, run.bars = len(ds), int(source["window_bars"])
    run.fingerprint = confirm_fingerprint(ds)
    step(f"loaded {source['stored_candidates']:,} candidates, {source['outcomes']:,} outcomes")
    step(f"dataset: {len(ds):,} confirm rows")
    work = partial(train_confirm, ds, source, plan, registry, artifacts, step)
    run.results.append(await attempt(FAMILY, work, registry, run.fingerprint))
    run.seconds = time.perf_counter() - t0
    return run
