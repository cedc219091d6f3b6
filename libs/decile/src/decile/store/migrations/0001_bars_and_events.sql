-- Bars keyed by (symbol, tf, bar time); events keyed by event id.
-- Bars carry only their primary key: every extra index slows the replay-rate upserts.
CREATE TABLE IF NOT EXISTS bars (
    symbol      text        NOT NULL,
    tf          text        NOT NULL,
    ts          timestamptz NOT NULL,  -- bar open time, UTC
    open        float8      NOT NULL,
    high        float8      NOT NULL,
    low         float8      NOT NULL,
    close       float8      NOT NULL,
    volume      float8      NOT NULL,
    batch_id    uuid        NOT NULL,  -- the BarBatch event that carried it
    PRIMARY KEY (symbol, tf, ts)
);

CREATE TABLE IF NOT EXISTS events (
    id          uuid        PRIMARY KEY,  -- UUIDv7: time-ordered
    type        text        NOT NULL,
    subject     text        NOT NULL,
    ts_event    timestamptz NOT NULL,
    trace_id    text        NOT NULL,
    producer    text        NOT NULL,
    symbol      text,
    body        jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS events_type_ts ON events (type, ts_event);
CREATE INDEX IF NOT EXISTS events_symbol_ts ON events (symbol, ts_event) WHERE symbol IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_trace ON events (trace_id);
