-- A tenant's host names: one primary and any aliases. A name belongs to one tenant at most (the
-- primary key); a deleted tenant's names are released.
CREATE TABLE tenant_domains (
    domain     TEXT PRIMARY KEY NOT NULL,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    is_primary INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id);
CREATE UNIQUE INDEX tenant_domains_one_primary ON tenant_domains (tenant_id) WHERE is_primary;
