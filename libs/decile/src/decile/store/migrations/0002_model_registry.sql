-- Model registry: one row per trained version, one row per status change,
-- one row per failed training attempt (so a failure is never silent).
CREATE TABLE IF NOT EXISTS model_versions (
    id               uuid        PRIMARY KEY,  -- UUIDv7
    family           text        NOT NULL
                     CHECK (family IN ('entry', 'risk', 'rr', 'offset', 'confirm')),
    version          text        NOT NULL CHECK (version ~ '^[0-9]+\.[0-9]+\.[0-9]+$'),
    status           text        NOT NULL DEFAULT 'staging'
                     CHECK (status IN ('staging', 'shadow', 'production', 'archived')),
    parent_id        uuid        REFERENCES model_versions (id),  -- production when trained
    schema_version   text        NOT NULL,  -- feature schema
    metrics          jsonb       NOT NULL,  -- the whole metrics.json
    artifact_uri     text        NOT NULL,  -- model.onnx
    sha256           text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes       bigint      NOT NULL CHECK (size_bytes >= 0),
    artifacts        jsonb       NOT NULL DEFAULT '{}',  -- name -> {uri, sha256, size}
    data_fingerprint text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (family, version)
);
-- At most one production and one shadow per family, whatever the code does.
CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_production
    ON model_versions (family) WHERE status = 'production';
CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_shadow
    ON model_versions (family) WHERE status = 'shadow';

CREATE TABLE IF NOT EXISTS promotions (
    id          bigserial   PRIMARY KEY,  -- history order
    model_id    uuid        NOT NULL REFERENCES model_versions (id),
    family      text        NOT NULL,
    from_status text        NOT NULL,
    to_status   text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('promote', 'rollback', 'archive')),
    actor       text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    gate        jsonb,  -- the checks that allowed a promotion
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS promotions_family ON promotions (family, id);
CREATE INDEX IF NOT EXISTS promotions_model ON promotions (model_id);

CREATE TABLE IF NOT EXISTS failed_attempts (
    id                uuid        PRIMARY KEY,  -- UUIDv7
    family            text        NOT NULL,
    stage             text        NOT NULL,  -- load|dataset|health|leakage|fit|parity|export|...
    code              text        NOT NULL,
    message           text        NOT NULL DEFAULT '',
    partial_metrics   jsonb,
    input_fingerprint text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS failed_attempts_family ON failed_attempts (family, created_at);
