-- A tenant's infrastructure (the seeds' TenantInfrastructure): what was asked for, where it
-- stands, the Terraform state key, the last plan's summary and the applied outputs.
CREATE TABLE tenant_infrastructure (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL UNIQUE REFERENCES tenants (id),
    status         TEXT NOT NULL,
    tier           TEXT NOT NULL,
    cloud_provider TEXT NOT NULL,
    region         TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    configuration  TEXT NOT NULL,
    state_key      TEXT NOT NULL,
    plan           TEXT,
    outputs        TEXT,
    error          TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- Every status change of a tenant's infrastructure (the seeds' InfrastructureStateTransition).
CREATE TABLE infrastructure_transitions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    from_state TEXT,
    to_state   TEXT NOT NULL,
    trigger    TEXT NOT NULL,
    details    TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX infrastructure_transitions_tenant ON infrastructure_transitions (tenant_id, at);
