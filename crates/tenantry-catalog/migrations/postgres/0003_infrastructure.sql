-- A tenant's infrastructure (the seeds' TenantInfrastructure): what was asked for, where it
-- stands, the Terraform state key, the last plan's summary and the applied outputs.
CREATE TABLE tenant_infrastructure (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL UNIQUE REFERENCES tenants (id),
    status         text NOT NULL,
    tier           text NOT NULL,
    cloud_provider text NOT NULL,
    region         text NOT NULL,
    namespace      text NOT NULL,
    configuration  jsonb NOT NULL,
    state_key      text NOT NULL,
    plan           jsonb,
    outputs        jsonb,
    error          text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- Every status change of a tenant's infrastructure (the seeds' InfrastructureStateTransition).
CREATE TABLE infrastructure_transitions (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    from_state text,
    to_state   text NOT NULL,
    trigger    text NOT NULL,
    details    jsonb NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX infrastructure_transitions_tenant ON infrastructure_transitions (tenant_id, at);
