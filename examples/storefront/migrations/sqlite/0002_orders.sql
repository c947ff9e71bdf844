-- Storefront: orders and their line items (SQLite).
--
-- order_number is the tenant's human-facing number (1, 2, 3, ... per tenant),
-- assigned by the application, it is unique within a tenant only.
-- Money is integer minor units (cents) in the order's currency.

CREATE TABLE orders (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    order_number  BIGINT NOT NULL CHECK (order_number > 0),
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled', 'refunded')),
    currency      TEXT NOT NULL CHECK (currency GLOB '[A-Z][A-Z][A-Z]'),  -- ISO 4217
    total_cents   BIGINT NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Target of the tenant-safe composite foreign keys, also the tenant_id index.
    CONSTRAINT orders_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT orders_tenant_id_order_number_key UNIQUE (tenant_id, order_number),
    -- Orders are financial records: a customer with orders cannot be hard-deleted
    -- (customers are soft-deleted through deleted_at).
    CONSTRAINT orders_customer_fkey FOREIGN KEY (tenant_id, customer_id)
        REFERENCES customers (tenant_id, id) ON DELETE RESTRICT
);

CREATE INDEX idx_orders_tenant_customer ON orders (tenant_id, customer_id);
CREATE INDEX idx_orders_tenant_status_created ON orders (tenant_id, status, created_at);

CREATE TABLE order_items (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    order_id          TEXT NOT NULL,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT order_items_order_fkey FOREIGN KEY (tenant_id, order_id)
        REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX idx_order_items_tenant_order ON order_items (tenant_id, order_id);
