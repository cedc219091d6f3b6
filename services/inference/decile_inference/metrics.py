"""The inference service's own series (the standard ones come from decile.metrics)."""

from decile.metrics import counter, gauge, histogram

CYCLES = counter(
    "decile_inference_cycles_total", "Feature cross-sections handled", ["tf", "outcome"]
)
SKIPPED = counter(
    "decile_inference_skipped_cycles_total", "Cycles not scored, by reason", ["tf", "code"]
)
CANDIDATES = counter("decile_inference_candidates_total", "Candidate signals published", ["tf"])
PROPOSALS = gauge("decile_inference_proposals", "Proposals scored in the last cycle", ["tf"])
INCOMPLETE = gauge(
    "decile_inference_incomplete_symbols", "Symbols with a NaN feature in the last cycle", ["tf"]
)
CYCLE_SECONDS = histogram(
    "decile_inference_cycle_seconds", "Feature batch in -> candidates published", ["tf"]
)
HEAD_FALLBACKS = counter(
    "decile_inference_head_fallbacks_total",
    "Candidates whose stop or target head gave no usable value (default used)",
    ["family"],
)
SWAPS = counter(
    "decile_inference_model_swaps_total", "Model versions swapped in", ["family", "status"]
)
REFUSED = counter(
    "decile_inference_model_refused_total", "Model versions refused at load", ["family", "code"]
)
SERVING = gauge(
    "decile_inference_model_info", "1 for the version being served", ["family", "status", "version"]
)
MODEL_AGE = gauge(
    "decile_model_age_seconds", "Seconds since the serving version was registered", ["family"]
)
MODEL_CADENCE = gauge(
    "decile_model_cadence_seconds",
    "The family's retraining cadence in seconds (the model is stale past twice this)",
    ["family"],
)
PSI = gauge(
    "decile_inference_psi",
    "Population stability index of a feature over the recent window against the serving "
    "model's reference distribution (metrics.json)",
    ["family", "feature"],
)
RETRAIN_REQUESTS = counter(
    "decile_inference_retrain_requests_total", "RetrainRequested published", ["family", "code"]
)
SHADOW_RANK_CORR = gauge(
    "decile_inference_shadow_rank_correlation",
    "Spearman correlation of shadow and production scores over the last cycle's proposals",
    ["family", "version"],
)
SHADOW_OVERLAP = gauge(
    "decile_inference_shadow_selected_overlap",
    "Jaccard overlap of the shadow's and production's kept sets in the last cycle",
    ["family", "version"],
)
