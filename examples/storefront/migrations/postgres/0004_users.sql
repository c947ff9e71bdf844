-- Storefront: the tenant's own users (staff who run the store) and its settings (PostgreSQL).

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL,
    email       text NOT NULL CHECK (email LIKE '%_@_%'),
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Also the tenant_id index.
    CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email)
);

-- One row per tenant, written by seeds/0001_store_settings.sql.
CREATE TABLE store_settings (
    tenant_id   text PRIMARY KEY,
    currency    char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),  -- ISO 4217
    timezone    text NOT NULL DEFAULT 'UTC',                                    -- IANA name
    created_at  timestamptz NOT NULL DEFAULT now()
);
