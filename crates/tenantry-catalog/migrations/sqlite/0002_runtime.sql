-- Secrets, the warm pool, API tokens, idempotency keys and event delivery.

-- Sealed credentials (ciphertext only; the master key never reaches the catalog).
CREATE TABLE tenant_secrets (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Databases created and migrated ahead of time, waiting to be claimed by a provisioning.
CREATE TABLE pool_databases (
    id             TEXT PRIMARY KEY NOT NULL,
    shard          TEXT NOT NULL REFERENCES shards (name),
    database       TEXT NOT NULL UNIQUE,
    secret         BLOB NOT NULL,
    schema_version INTEGER,
    created_at     TEXT NOT NULL,
    claimed_by     TEXT,
    claimed_at     TEXT
);
CREATE INDEX pool_databases_free ON pool_databases (shard, claimed_by, created_at);

-- API tokens, stored as SHA-256 hashes only.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('reader', 'operator', 'admin')),
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- The first answer to a request sent with an Idempotency-Key, replayed on retries.
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- How far each event sink has delivered the outbox.
CREATE TABLE sink_cursors (
    sink        TEXT PRIMARY KEY NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Events a sink refused for good.
CREATE TABLE dead_letters (
    sink        TEXT NOT NULL,
    seq         INTEGER NOT NULL REFERENCES outbox (seq),
    error       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (sink, seq)
);
