-- Storefront: orders and their line items (PostgreSQL).
--
-- order_number is the tenant's human-facing number (1, 2, 3, ... per tenant),
-- assigned by the application, it is unique within a tenant only.
-- Money is integer minor units (cents) in the order's currency.

CREATE TABLE orders (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL,
    customer_id   uuid NOT NULL,
    order_number  bigint NOT NULL CHECK (order_number > 0),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled', 'refunded')),
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),  -- ISO 4217
    total_cents   bigint NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
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
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         text NOT NULL,
    order_id          uuid NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_items_order_fkey FOREIGN KEY (tenant_id, order_id)
        REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX idx_order_items_tenant_order ON order_items (tenant_id, order_id);
