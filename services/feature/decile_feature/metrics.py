from decile.metrics import counter, gauge, histogram

CYCLE_SECONDS = histogram("decile_feature_cycle_seconds", "Online feature cycle (all symbols)", [])
CYCLES = counter("decile_feature_cycles_total", "Feature cross-sections published", ["tf"])
SYMBOLS = gauge("decile_feature_symbols", "Symbols in the last cycle", ["tf"])
REBUILT = gauge("decile_feature_rebuilt_cycles", "Cycles replayed into state at start", ["tf"])
UNHEALTHY = gauge(
    "decile_feature_unhealthy", "1 when a feature failed the health check", ["feature", "code"]
)
NULL_RATE = gauge("decile_feature_null_rate", "Fraction of NaN over the health window", ["feature"])
