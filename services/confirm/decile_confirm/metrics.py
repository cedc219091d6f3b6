"""The confirm service's own series (the standard ones come from decile.metrics)."""

from decile.metrics import counter, gauge, histogram

DECISIONS = counter(
    "decile_confirm_decisions_total",
    "Confirm decisions published, by decision and reason code ('' when approved or inverted)",
    ["decision", "code"],
)
REPUBLISHED = counter(
    "decile_confirm_republished_total",
    "Decisions published again and dropped by the stream's dedup (a candidate or window "
    "decided twice: redelivery or restart)",
    [],
)
BEYOND_HISTORY = counter(
    "decile_confirm_beyond_history_total",
    "Candidates whose baseline starts before the bars kept in memory (raise history_bars)",
    [],
)
UNSCORED = counter(
    "decile_confirm_unscored_total",
    "Complete windows decided without a confirm model (without_model applied), by reason",
    ["reason", "decision"],
)
OPEN_WINDOWS = gauge("decile_confirm_open_windows", "Windows waiting for their bars", [])
DECISION_SECONDS = histogram(
    "decile_confirm_decision_seconds",
    "Candidate or bar cross-section in -> the decisions it made ready published",
    [],
)
WAIT_SECONDS = histogram(
    "decile_confirm_wait_seconds",
    "Event time from the candidate's bar close to its decision (the window's wait)",
    [],
    buckets=(0.0, 60.0, 120.0, 300.0, 360.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0),
)
MODEL_INFO = gauge(
    "decile_confirm_model_info", "1 for the confirm model version deciding, else 0", ["version"]
)
MODEL_SWAPS = counter("decile_confirm_model_swaps_total", "Confirm model versions swapped in", [])
MODEL_REFUSED = counter(
    "decile_confirm_model_refused_total",
    "Confirm model versions refused at load (flow mismatch, sha256, goldens...), by code",
    ["code"],
)
RESTORED = gauge(
    "decile_confirm_restored_windows", "Open windows reloaded from PostgreSQL at start", []
)
UNREADABLE = counter(
    "decile_confirm_unreadable_windows_total",
    "Persisted windows that could not be read back at start (left in the table)",
    [],
)
HISTORY_REPLAYED = gauge(
    "decile_confirm_history_replayed", "Bar cross-sections replayed into memory at start", []
)
