from decile.metrics import counter, histogram

ROWS = counter("decile_recorder_rows_total", "Rows newly stored", ["table"])
SKIPPED = counter("decile_recorder_skipped_total", "Rows already stored (replay)", ["table"])
BATCH_SECONDS = histogram("decile_recorder_batch_seconds", "One batch write", ["table"])
