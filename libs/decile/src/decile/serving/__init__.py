"""Serving: load a registered model version safely, score a cross-section, watch drift.

The library the model-watcher and inference services are built on; no I/O
beyond fetching an artifact. Public API::

    SERVING_FEATURES                                   # schema features + side + strategy_code
    await load_version(version, store, SERVING_FEATURES) -> LoadedModel   # or ModelRefused
    validate_model(version, onnx_bytes, SERVING_FEATURES) -> LoadedModel  # the same, sync
    LoadedModel.raw(x) / .predict(x) / .drift_monitor()
    ModelSet(entry, risk=, rr=, offset=)               # immutable; swap whole sets between cycles
    score_cycle(matrix, names, symbols, ts, models, floor=, top_fraction=0.1) -> CycleScores
    select(score, floor=, top_fraction=) -> Selection  # the ranking/selection rule alone
    PsiMonitor(reference, window, names=).update(x) / .psi() / .check()
    model_age_s(v, now), is_stale(v, cadence_s, now), stale_rejection(v, cadence_s, now)
    ServingError / ModelRefused / BatchRefused(code, message, values).rejection()

Registry change notifications live with the registry:
:func:`decile.registry.watch_changes`.
"""

from decile.serving.drift import DRIFT_THRESHOLD, PsiMonitor
from decile.serving.errors import BatchRefused, ModelRefused, ServingError
from decile.serving.loader import (
    GOLDEN_ATOL,
    SERVING_FEATURES,
    LoadedModel,
    load_version,
    serving_features,
    session_options,
    validate_model,
)
from decile.serving.scoring import (
    SERVED_FAMILIES,
    TOP_FRACTION,
    CycleScores,
    ModelSet,
    Selected,
    Selection,
    score_cycle,
    select,
)
from decile.serving.staleness import STALE_FACTOR, is_stale, model_age_s, stale_rejection

__all__ = [
    "DRIFT_THRESHOLD",
    "GOLDEN_ATOL",
    "SERVED_FAMILIES",
    "SERVING_FEATURES",
    "STALE_FACTOR",
    "TOP_FRACTION",
    "BatchRefused",
    "CycleScores",
    "LoadedModel",
    "ModelRefused",
    "ModelSet",
    "PsiMonitor",
    "Selected",
    "Selection",
    "ServingError",
    "is_stale",
    "load_version",
    "model_age_s",
    "score_cycle",
    "select",
    "serving_features",
    "session_options",
    "stale_rejection",
    "validate_model",
]
