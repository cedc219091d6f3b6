"""PostgreSQL store: migrations, bars, events. Writes are batched and idempotent."""
