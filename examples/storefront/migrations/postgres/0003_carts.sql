-- Storefront: shopping carts and their items (PostgreSQL).
--
-- customer_id is NULL for a guest cart.

CREATE TABLE shopping_carts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    text NOT NULL,
    customer_id  uuid,
    status       text NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'converted', 'abandoned')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
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
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         text NOT NULL,
    cart_id           uuid NOT NULL,
    sku               text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- One line per SKU per cart, also the tenant_id and cart lookup index.
    CONSTRAINT cart_items_tenant_id_cart_id_sku_key UNIQUE (tenant_id, cart_id, sku),
    CONSTRAINT cart_items_cart_fkey FOREIGN KEY (tenant_id, cart_id)
        REFERENCES shopping_carts (tenant_id, id) ON DELETE CASCADE
);
