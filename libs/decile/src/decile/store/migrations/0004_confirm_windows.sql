-- Open confirmation windows of the confirm service: one row per candidate still waiting
-- for its bars. Written BEFORE the candidate is acked, deleted once its ConfirmDecision is
-- published, reloaded at start: a window survives a crash and is decided exactly once.
CREATE TABLE IF NOT EXISTS confirm_windows (
    candidate_id text        PRIMARY KEY,  -- CandidateSignal id (the decision id derives from it)
    symbol       text        NOT NULL,
    deadline     timestamptz NOT NULL,     -- vetoed as stale when still incomplete by then
    state        jsonb       NOT NULL,     -- decile.confirm.Window.to_dict()
    opened_at    timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS confirm_windows_deadline ON confirm_windows (deadline);
