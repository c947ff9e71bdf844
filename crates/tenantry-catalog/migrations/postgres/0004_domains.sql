-- A tenant's host names: one primary and any aliases. A name belongs to one tenant at most (the
-- primary key); a deleted tenant's names are released.
CREATE TABLE tenant_domains (
    domain     text PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    is_primary boolean NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id);
CREATE UNIQUE INDEX tenant_domains_one_primary ON tenant_domains (tenant_id) WHERE is_primary;
