-- Risk audit trail: one row per risk decision, written by the risk service BEFORE the
-- decision is published. Append-only: UPDATE, DELETE and TRUNCATE are refused.
CREATE TABLE IF NOT EXISTS risk_decisions (
    decision_id  text        PRIMARY KEY,  -- RiskDecision id (derived from the confirm's)
    confirm_id   text        NOT NULL,     -- ConfirmDecision id
    candidate_id text        NOT NULL,     -- CandidateSignal id
    trace_id     text        NOT NULL,
    symbol       text        NOT NULL,
    strategy     text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('approved', 'rejected')),
    gate         text,                     -- the blocking gate (NULL when approved)
    code         text,                     -- its ReasonCode (NULL when approved)
    "values"     jsonb       NOT NULL DEFAULT '{}',  -- what the gate compared
    checked      text[]      NOT NULL,     -- gates evaluated, in order
    snapshot     jsonb       NOT NULL,     -- book figures the decision was made on
    intent       jsonb,                    -- the OrderIntent (NULL when rejected)
    event        jsonb       NOT NULL,     -- the RiskDecision as published
    decided_at   timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'approved') = (intent IS NOT NULL)),
    CHECK ((outcome = 'rejected') = (code IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS risk_decisions_symbol ON risk_decisions (symbol, decided_at);
CREATE INDEX IF NOT EXISTS risk_decisions_code ON risk_decisions (code, decided_at)
    WHERE code IS NOT NULL;

CREATE OR REPLACE FUNCTION risk_decisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'risk_decisions is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS risk_decisions_no_change ON risk_decisions;
CREATE TRIGGER risk_decisions_no_change
    BEFORE UPDATE OR DELETE ON risk_decisions
    FOR EACH ROW EXECUTE FUNCTION risk_decisions_append_only();

DROP TRIGGER IF EXISTS risk_decisions_no_truncate ON risk_decisions;
CREATE TRIGGER risk_decisions_no_truncate
    BEFORE TRUNCATE ON risk_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION risk_decisions_append_only();
