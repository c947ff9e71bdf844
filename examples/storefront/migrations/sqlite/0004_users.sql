-- Storefront: the tenant's own users (staff who run the store) and its settings (SQLite).

CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    email       TEXT NOT NULL CHECK (email LIKE '%_@_%'),
    role        TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Also the tenant_id index.
    CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email)
);

-- One row per tenant, written by seeds/0001_store_settings.sql.
CREATE TABLE store_settings (
    tenant_id   TEXT PRIMARY KEY NOT NULL,
    currency    TEXT NOT NULL DEFAULT 'USD' CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),  -- ISO 4217
    timezone    TEXT NOT NULL DEFAULT 'UTC',                                         -- IANA name
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
