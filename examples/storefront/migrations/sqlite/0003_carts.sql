-- Storefront: shopping carts and their items (SQLite).
--
-- customer_id is NULL for a guest cart.

CREATE TABLE shopping_carts (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    customer_id  TEXT,
    status       TEXT NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'converted', 'abandoned')),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Target of the tenant-safe composite foreign keys, also the tenant_id index.
    CONSTRAINT shopping_carts_tenant_id_id_key UNIQUE (tenant_id, id),
    -- A NULL customer_id (guest cart) is not checked. Carts go with their customer.
    CONSTRAINT shopping_carts_customer_fkey FOREIGN KEY (tenant_id, customer_id)
        REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX idx_shopping_carts_tenant_customer ON shopping_carts (tenant_id, customer_id);
CREATE INDEX idx_shopping_carts_tenant_status_updated
    ON shopping_carts (tenant_id, status, updated_at);

CREATE TABLE cart_items (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    cart_id           TEXT NOT NULL,
    sku               TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- One line per SKU per cart, also the tenant_id and cart lookup index.
    CONSTRAINT cart_items_tenant_id_cart_id_sku_key UNIQUE (tenant_id, cart_id, sku),
    CONSTRAINT cart_items_cart_fkey FOREIGN KEY (tenant_id, cart_id)
        REFERENCES shopping_carts (tenant_id, id) ON DELETE CASCADE
);
