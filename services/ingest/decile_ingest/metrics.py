from decile.metrics import counter, gauge, histogram

BARS = counter("decile_ingest_bars_total", "Bars published in cross-sections", ["tf"])
CYCLES = counter("decile_ingest_cycles_total", "Cross-sections published", ["tf"])
QUARANTINED = counter("decile_ingest_quarantined_total", "Bars refused by data quality", ["reason"])
GAP_BARS = counter("decile_ingest_gap_bars_total", "Missing bars detected (never filled)", ["tf"])
MISSING = gauge("decile_ingest_missing_symbols", "Symbols missing from the last cycle", ["tf"])
CYCLE_SYMBOLS = gauge("decile_ingest_cycle_symbols", "Symbols in the last cycle", ["tf"])
LAST_BAR = gauge("decile_ingest_last_bar_time_seconds", "Open time of the last bar", ["tf"])
CYCLE_SECONDS = histogram("decile_ingest_cycle_seconds", "Quality + assembly + encode", [])
LOCKSTEP_WAIT = histogram(
    "decile_ingest_lockstep_wait_seconds",
    "Lockstep replay: time the fleet took to settle before the next cycle was published",
    [],
)
