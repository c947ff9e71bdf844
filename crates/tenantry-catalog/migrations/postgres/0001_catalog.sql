-- The catalog on PostgreSQL: the same records as on SQLite, with native types.

CREATE TABLE shards (
    name        text PRIMARY KEY,
    region      text NOT NULL,
    engine      text NOT NULL,
    url         text,
    directory   text,
    capacity    bigint NOT NULL CHECK (capacity > 0),
    state       text NOT NULL CHECK (state IN ('active', 'draining')),
    source      text NOT NULL CHECK (source IN ('config', 'runtime')),
    created_at  timestamptz NOT NULL
);

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    slug            text NOT NULL,
    plan            text NOT NULL,
    region          text NOT NULL,
    state           text NOT NULL,
    isolation       text NOT NULL,
    compute         text NOT NULL,
    shard           text NOT NULL,
    placement       jsonb NOT NULL,
    characteristics jsonb NOT NULL,
    space           jsonb,
    admin_email     text NOT NULL,
    schema_version  bigint,
    failure         jsonb,
    epoch           bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX tenants_live_slug ON tenants (slug) WHERE state <> 'deleted';
CREATE INDEX tenants_shard ON tenants (shard, isolation, state);

CREATE TABLE transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    from_state  text,
    to_state    text NOT NULL,
    trigger     text NOT NULL,
    actor       text NOT NULL,
    details     jsonb NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX transitions_tenant ON transitions (tenant_id, id);

CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    delivered_at timestamptz
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, seq);

CREATE TABLE operations (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    kind             text NOT NULL,
    state            text NOT NULL,
    params           jsonb NOT NULL,
    error            text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz
);
CREATE UNIQUE INDEX operations_one_active_per_tenant ON operations (tenant_id)
    WHERE state IN ('pending', 'running', 'rolling_back');
CREATE INDEX operations_open ON operations (created_at)
    WHERE state IN ('pending', 'running', 'rolling_back');

CREATE TABLE operation_steps (
    operation_id uuid NOT NULL REFERENCES operations (id),
    idx          bigint NOT NULL,
    name         text NOT NULL,
    state        text NOT NULL,
    attempts     bigint NOT NULL DEFAULT 0,
    last_error   text,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (operation_id, idx)
);

CREATE TABLE tenant_secrets (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE pool_databases (
    id             uuid PRIMARY KEY,
    shard          text NOT NULL REFERENCES shards (name),
    database       text NOT NULL UNIQUE,
    secret         bytea NOT NULL,
    schema_version bigint,
    created_at     timestamptz NOT NULL,
    claimed_by     uuid,
    claimed_at     timestamptz
);
CREATE INDEX pool_databases_free ON pool_databases (shard, created_at) WHERE claimed_by IS NULL;

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    scope       text NOT NULL CHECK (scope IN ('reader', 'operator', 'admin')),
    hash        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE idempotency_keys (
    key          text PRIMARY KEY,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE sink_cursors (
    sink        text PRIMARY KEY,
    seq         bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE dead_letters (
    sink        text NOT NULL,
    seq         bigint NOT NULL REFERENCES outbox (seq),
    error       text NOT NULL,
    attempts    bigint NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (sink, seq)
);
