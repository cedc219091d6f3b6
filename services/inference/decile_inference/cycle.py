"""One feature cross-section in, candidates and one InferenceCycle out.

Every ``feat.batch`` ends in exactly one :class:`~decile.events.InferenceCycle`
(scored, or skipped with the reason), published after its candidates; ids
derive from the batch, so a redelivered batch republishes the same events and
JetStream drops the copies. Refusals (no model, stale model, feature schema
mismatch, too many missing symbols) are that event plus a metric, never a
crash and never a silent gap.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from decile import obs
from decile.bus import Bus
from decile.confirm.flow import HTF_TREND_FEATURE
from decile.events import CandidateSignal, FeatureBatch, InferenceCycle, Rejection, RetrainRequested
from decile.reasons import ReasonCode
from decile.serving import (
    BatchRefused,
    CycleScores,
    ModelSet,
    PsiMonitor,
    Selected,
    model_age_s,
    score_cycle,
    stale_rejection,
)
from decile_inference import metrics
from decile_inference.book import ModelBook
from decile_inference.settings import InferenceSection

log = obs.get_logger(__name__)
DEFAULT_FLOOR = 0.5
LABEL_R = 1.0  # the entry label's stop and target, in ATR (k_atr), when a head is missing


@dataclass
class Cycle:
    """What the handler needs between batches: the book, settings and rolling state."""

    bus: Bus
    book: ModelBook
    cfg: InferenceSection
    universe: frozenset[str] = frozenset()
    drift: PsiMonitor | None = None
    drift_model: str = ""
    cycles: int = 0
    last_retrain: dict[str, float] = field(default_factory=dict)


def _skip(code: ReasonCode, detail: str, **values: float | int | str) -> Rejection:
    return Rejection(gate="inference", code=code, values=dict(values), detail=detail)


def _floor(models: ModelSet, cfg: InferenceSection) -> float:
    if cfg.score_floor is not None:
        return cfg.score_floor
    trained = models.entry.score_floor
    return trained if trained is not None else DEFAULT_FLOOR


def _missing(cycle: Cycle, batch: FeatureBatch) -> Rejection | None:
    """Too many of the previous cycle's symbols absent: a partial cross-section would
    rank a few symbols against each other and call the best of them a top decile."""
    known, now = cycle.universe, frozenset(batch.symbols)
    cycle.universe = now or known
    if not known:
        return None
    gone = len(known - now)
    limit = cycle.cfg.max_missing_fraction * len(known)
    if gone > limit:
        return _skip(ReasonCode.TOO_MANY_MISSING_SYMBOLS,
                     f"{gone} of the previous cycle's {len(known)} symbols are missing",
                     missing=gone, known=len(known), limit=round(limit, 3))
    return None


def _usable(value: float, family: str) -> float:
    if math.isfinite(value) and value > 0:
        return value
    metrics.HEAD_FALLBACKS.labels(family).inc()
    return LABEL_R


def prices(batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
    """Each row's close and ATR in price units, once per cycle (a batch without the
    ``close`` context column cannot price a candidate: NaN)."""
    n = len(batch.symbols)
    close = batch.column("close") if "close" in batch.context_names else np.full(n, np.nan)
    return close, batch.column("atr_14_pct") / 100.0 * close


def context(batch: FeatureBatch, row: int) -> dict[str, float]:
    """Values of the candidate's bar that confirm needs and cannot recompute: the
    higher-timeframe trend its flow bias reads (absent when not in the batch or NaN)."""
    if HTF_TREND_FEATURE not in batch.feature_names:
        return {}
    value = float(batch.column(HTF_TREND_FEATURE)[row])
    return {HTF_TREND_FEATURE: value} if math.isfinite(value) else {}


def candidate(
    batch: FeatureBatch, sel: Selected, scores: CycleScores,
    priced: tuple[np.ndarray, np.ndarray] | None = None,
) -> CandidateSignal | None:
    """The signal for one kept proposal; None when its row has no usable price or ATR."""
    close_col, atr_col = priced or prices(batch)
    close, atr = float(close_col[sel.row]), float(atr_col[sel.row])
    if not (math.isfinite(close) and close > 0 and math.isfinite(atr) and atr > 0):
        return None
    return batch.follow(
        CandidateSignal,
        sel.symbol,
        sel.strategy,
        producer="inference",
        symbol=sel.symbol,
        tf=batch.tf,
        bar_time=batch.bar_time,
        strategy=sel.strategy,
        side=sel.side,
        entry_price=close,
        atr=atr,
        p_win=min(max(sel.p_win, 0.0), 1.0),
        sl_katr=_usable(sel.sl_katr, "risk"),
        rr_target=_usable(sel.rr_target, "rr"),
        offset_katr=sel.offset_katr if math.isfinite(sel.offset_katr) else 0.0,
        score=sel.score,
        rank=sel.rank,
        cycle_size=sel.cycle_size,
        cycle_threshold=sel.cycle_threshold if math.isfinite(sel.cycle_threshold) else 1.0,
        score_floor=sel.score_floor,
        model_versions=scores.versions,
        feature_schema=scores.schema_version,
        source_id=batch.id,
        context=context(batch, sel.row),
    )


async def on_features(batch: FeatureBatch, cycle: Cycle) -> None:
    start = time.perf_counter()
    models = cycle.book.production  # read once: this cycle is scored by exactly this set
    now = datetime.now(UTC)
    missing = _missing(cycle, batch)
    refusal: Rejection | None = None
    scores: CycleScores | None = None
    if models is None:
        refusal = _skip(ReasonCode.NO_MODEL, "no production entry model is loaded")
    else:
        _export_age(models, cycle.cfg, now)
        refusal = stale_rejection(models.entry, cycle.cfg.cadence_s, now) or missing
    if refusal is None and models is not None:
        try:
            scores = score_cycle(batch.features, batch.feature_names, batch.symbols,
                                 batch.bar_time, models, floor=_floor(models, cycle.cfg),
                                 top_fraction=cycle.cfg.top_fraction,
                                 schema_version=batch.feature_schema)
        except BatchRefused as err:
            refusal = err.rejection("inference")
    if scores is None:
        await _publish_skip(batch, cycle, refusal, models)
        return
    priced = prices(batch)
    signals = [c for c in (candidate(batch, s, scores, priced) for s in scores.selected()) if c]
    summary = batch.follow(
        InferenceCycle, "cycle", producer="inference", tf=batch.tf, bar_time=batch.bar_time,
        source_id=batch.id, feature_schema=batch.feature_schema, model_versions=scores.versions,
        symbols=len(batch.symbols), incomplete=len(scores.incomplete), proposals=len(scores),
        kept=len(signals), cycle_threshold=_finite(scores.threshold),
        score_floor=scores.floor)
    # pipelined on one connection: stored in this order (the cycle after its signals), and
    # acknowledged together in one round trip
    await cycle.bus.publish_many([*signals, summary])
    tf = batch.tf
    metrics.CYCLES.labels(tf, "scored").inc()
    metrics.CANDIDATES.labels(tf).inc(len(signals))
    metrics.PROPOSALS.labels(tf).set(len(scores))
    metrics.INCOMPLETE.labels(tf).set(len(scores.incomplete))
    metrics.CYCLE_SECONDS.labels(tf).observe(time.perf_counter() - start)
    _shadow(batch, cycle, models, scores)  # type: ignore[arg-type]
    await _drift(batch, cycle, models, scores)  # type: ignore[arg-type]


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


async def _publish_skip(
    batch: FeatureBatch, cycle: Cycle, refusal: Rejection | None, models: ModelSet | None
) -> None:
    assert refusal is not None
    metrics.CYCLES.labels(batch.tf, "skipped").inc()
    metrics.SKIPPED.labels(batch.tf, refusal.code.value).inc()
    log.warning("cycle skipped", bar_time=batch.bar_time.isoformat(), code=refusal.code,
                values=refusal.values)
    await cycle.bus.publish(batch.follow(
        InferenceCycle, "cycle", producer="inference", tf=batch.tf, bar_time=batch.bar_time,
        source_id=batch.id, feature_schema=batch.feature_schema,
        model_versions=models.versions() if models else {}, symbols=len(batch.symbols),
        skipped=refusal))


def _export_age(models: ModelSet, cfg: InferenceSection, now: datetime) -> None:
    for family, model in models.models.items():
        metrics.MODEL_AGE.labels(family).set(model_age_s(model, now))
        metrics.MODEL_CADENCE.labels(family).set(cfg.cadence_s)


def _shadow(batch: FeatureBatch, cycle: Cycle, models: ModelSet, scores: CycleScores) -> None:
    """Shadow entry versions score the same proposals; only agreement is exported."""
    entry = cycle.book.shadow.get("entry")
    if not cycle.cfg.shadow or entry is None or len(scores) == 0:
        return
    if entry.features != models.features:
        return
    shadow_p = entry.predict(scores.x)
    order_a = np.argsort(np.argsort(scores.score, kind="mergesort"), kind="mergesort")
    order_b = np.argsort(np.argsort(shadow_p, kind="mergesort"), kind="mergesort")
    corr = float(np.corrcoef(order_a, order_b)[0, 1]) if len(scores) > 1 else 1.0
    k = scores.top_k
    top_b = set(np.argsort(-shadow_p, kind="mergesort")[:k].tolist())
    top_a = set(np.flatnonzero(scores.kept).tolist())
    union = top_a | top_b
    overlap = len(top_a & top_b) / len(union) if union else 1.0
    metrics.SHADOW_RANK_CORR.labels("entry", entry.version).set(corr if math.isfinite(corr) else 0)
    metrics.SHADOW_OVERLAP.labels("entry", entry.version).set(overlap)
    log.info("shadow scored", version=entry.version, rank_corr=round(corr, 4),
             selected_overlap=round(overlap, 4), bar_time=batch.bar_time.isoformat())


async def _drift(batch: FeatureBatch, cycle: Cycle, models: ModelSet, scores: CycleScores) -> None:
    """PSI of the scored inputs against the entry model's training reference."""
    entry = models.entry
    if cycle.drift is None or cycle.drift_model != str(entry.id):
        # checks start once the window is full: slow features (288-bar betas) look drifted
        # over a few hours of correlated rows
        window = cycle.cfg.drift_window
        cycle.drift = entry.drift_monitor(window, min_rows=window)
        cycle.drift_model = str(entry.id)
    if len(scores):
        cycle.drift.update(scores.x)
    cycle.cycles += 1
    if cycle.cycles % cycle.cfg.drift_every:
        return
    for feature, value in cycle.drift.psi().items():
        if math.isfinite(value):
            metrics.PSI.labels("entry", feature).set(value)
    rejection = cycle.drift.check()
    if rejection is None:
        return
    now = time.monotonic()
    last = cycle.last_retrain.get("entry")
    if last is not None and now - last < cycle.cfg.retrain_cooldown_s:
        return
    cycle.last_retrain["entry"] = now
    metrics.RETRAIN_REQUESTS.labels("entry", rejection.code.value).inc()
    log.warning("feature drift: retraining requested", **rejection.values)
    await cycle.bus.publish(batch.follow(
        RetrainRequested, "retrain", "entry", producer="inference", family="entry",
        reason=rejection, values={"model": entry.version}))
