-- The catalog on SQLite. Times are RFC 3339 text in UTC; JSON columns are text.

CREATE TABLE shards (
    name        TEXT PRIMARY KEY NOT NULL,
    region      TEXT NOT NULL,
    engine      TEXT NOT NULL,
    url         TEXT,
    directory   TEXT,
    capacity    INTEGER NOT NULL CHECK (capacity > 0),
    state       TEXT NOT NULL CHECK (state IN ('active', 'draining')),
    source      TEXT NOT NULL CHECK (source IN ('config', 'runtime')),
    created_at  TEXT NOT NULL
);

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY NOT NULL,
    slug            TEXT NOT NULL,
    plan            TEXT NOT NULL,
    region          TEXT NOT NULL,
    state           TEXT NOT NULL,
    isolation       TEXT NOT NULL,
    compute         TEXT NOT NULL,
    shard           TEXT NOT NULL,
    placement       TEXT NOT NULL,
    characteristics TEXT NOT NULL,
    space           TEXT,
    admin_email     TEXT NOT NULL,
    schema_version  INTEGER,
    failure         TEXT,
    epoch           INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- A slug names one live tenant; a deleted tenant's row stays for audit and frees its slug.
CREATE UNIQUE INDEX tenants_live_slug ON tenants (slug) WHERE state <> 'deleted';
CREATE INDEX tenants_shard ON tenants (shard, isolation, state);

CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    details     TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX transitions_tenant ON transitions (tenant_id, id);

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, seq);

CREATE TABLE operations (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    params           TEXT NOT NULL,
    error            TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
-- One operation per tenant at a time.
CREATE UNIQUE INDEX operations_one_active_per_tenant ON operations (tenant_id)
    WHERE state IN ('pending', 'running', 'rolling_back');

CREATE TABLE operation_steps (
    operation_id TEXT NOT NULL REFERENCES operations (id),
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    PRIMARY KEY (operation_id, idx)
);
