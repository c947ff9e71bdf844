-- The tenant's store settings row, in portable SQL (SQLite and PostgreSQL).
-- The control plane substitutes the tenant id placeholder and runs this once per tenant.
INSERT INTO store_settings (tenant_id, currency, timezone) VALUES ('{{tenant_id}}', 'USD', 'UTC');
