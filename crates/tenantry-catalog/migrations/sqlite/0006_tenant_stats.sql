-- What each tenant holds and how its queries go, for placement decisions: rows per table and
-- the size of its data (collected from its space), and query counts and time (reported by the
-- router that serves it).
CREATE TABLE tenant_stats (
    tenant_id       TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id),
    rows            TEXT NOT NULL DEFAULT '{}',
    size_bytes      INTEGER NOT NULL DEFAULT 0,
    size_estimated  INTEGER NOT NULL DEFAULT 0,
    collected_at    TEXT,
    queries         INTEGER NOT NULL DEFAULT 0,
    query_ms_total  REAL NOT NULL DEFAULT 0,
    queries_since   TEXT
);
