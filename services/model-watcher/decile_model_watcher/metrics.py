from decile.metrics import counter, gauge

ACTIVATIONS = counter(
    "decile_model_activations_total", "model.activated published (server duplicates included)",
    ["family", "status"],
)
REJECTIONS = counter(
    "decile_model_rejections_total", "Versions refused by validation (model.rejected)",
    ["family", "code"],
)
RECONNECTS = counter(
    "decile_model_watch_reconnects_total", "Registry LISTEN connections after the first", []
)
RESYNCS = counter("decile_model_watch_resyncs_total", "Full registry re-reads", ["reason"])
ERRORS = counter(
    "decile_model_watch_errors_total", "Transient failures, retried with backoff", ["stage"]
)
PENDING = gauge(
    "decile_model_watch_pending", "1 while a failed check waits for its retry", []
)
SERVING = gauge(
    "decile_model_serving_info", "1 for the version announced per family and status, 0 for the "
    "one it replaced", ["family", "status", "version"],
)
