-- Storefront: customers and their addresses (PostgreSQL).
--
-- Every table carries tenant_id: in the shared database many tenants' rows
-- coexist, so every unique constraint and every foreign key includes it.
-- Runs with search_path already set by the control plane, no schema names here.
-- Row-level security is added by the control plane, not by these files.

CREATE TABLE customers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL,
    email       text NOT NULL CHECK (email LIKE '%_@_%'),
    first_name  text,
    last_name   text,
    phone       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    -- Target of the tenant-safe composite foreign keys, also the tenant_id index.
    CONSTRAINT customers_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT customers_tenant_id_email_key UNIQUE (tenant_id, email)
);

CREATE INDEX idx_customers_tenant_created ON customers (tenant_id, created_at);

CREATE TABLE customer_addresses (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    text NOT NULL,
    customer_id  uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('billing', 'shipping')),
    line1        text NOT NULL,
    line2        text,
    city         text NOT NULL,
    region       text,
    postal_code  text,
    country      char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),  -- ISO 3166-1 alpha-2
    is_default   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customer_addresses_customer_fkey FOREIGN KEY (tenant_id, customer_id)
        REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX idx_customer_addresses_tenant_customer
    ON customer_addresses (tenant_id, customer_id);

-- At most one default billing and one default shipping address per customer.
CREATE UNIQUE INDEX uq_customer_addresses_default
    ON customer_addresses (tenant_id, customer_id, kind)
    WHERE is_default;
