-- What each tenant holds and how its queries go, for placement decisions: rows per table and
-- the size of its data (collected from its space), and query counts and time (reported by the
-- router that serves it).
CREATE TABLE tenant_stats (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants (id),
    rows            jsonb NOT NULL DEFAULT '{}',
    size_bytes      bigint NOT NULL DEFAULT 0,
    size_estimated  boolean NOT NULL DEFAULT false,
    collected_at    timestamptz,
    queries         bigint NOT NULL DEFAULT 0,
    query_ms_total  double precision NOT NULL DEFAULT 0,
    queries_since   timestamptz
);
