-- Execution state: one row per paper account, the broker's snapshot (open orders and
-- positions, cash, the decision ids it has acted on, the decisions a kill switch cancelled),
-- upserted by the execution service after each input that changed it and before that input
-- is acked. exec_seq is the EXEC stream sequence of the last event published before the
-- save: events after it may have been published by a process that died before saving.
CREATE TABLE IF NOT EXISTS execution_state (
    account    text        PRIMARY KEY,
    snapshot   jsonb       NOT NULL,
    exec_seq   bigint      NOT NULL DEFAULT 0 CHECK (exec_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
