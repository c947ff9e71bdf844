//! What the driver reads of a space's schema: its tables, their foreign keys, its migration
//! ledger. Always about the connection's *current* schema (the tenant's schema for schema
//! spaces, reached through the connection's `search_path`; `public` otherwise), and always from
//! the catalog, never from a hard-coded list, so any application works.

use crate::error::Result;
use crate::tables::children_first;
use sqlx::{AssertSqlSafe, PgConnection};

/// The control plane's own tables in a space: never granted to applications.
pub(super) const LEDGERS: &[&str] = &[
    "_sqlx_migrations",
    "tenantry_seeds",
    super::moves::CHANGES,
    super::moves::MOVING,
];

/// The connection's current schema, `None` when no schema of its search path exists.
pub(super) async fn current_schema(conn: &mut PgConnection) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut *conn)
        .await?)
}

/// A live move's own tables: never the tenant's data.
const MOVE_TABLES: &[&str] = &[super::moves::CHANGES, super::moves::MOVING];

/// Base tables of the current schema with a `tenant_id` column, children before parents by
/// their foreign keys (found from `pg_attribute` and `pg_constraint`). `pg_catalog`, not
/// `information_schema`: on a fresh connection the latter's views cost milliseconds to plan.
pub(super) async fn tenant_tables(conn: &mut PgConnection) -> Result<Vec<String>> {
    let tables = tenant_table_names(conn).await?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint k
         JOIN pg_class child ON child.oid = k.conrelid
         JOIN pg_class parent ON parent.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = child.relnamespace
         WHERE k.contype = 'f' AND n.nspname = current_schema()
           AND parent.relnamespace = child.relnamespace",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(children_first(tables, references))
}

/// [`tenant_tables`] by name, in no particular order: for reading, where order does not matter.
pub(super) async fn tenant_table_names(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND a.attnum > 0
           AND n.nspname = current_schema() AND c.relkind IN ('r', 'p')
           AND c.relname <> ALL($1)
         ORDER BY 1",
    )
    .bind(MOVE_TABLES)
    .fetch_all(&mut *conn)
    .await?)
}

/// The outline of a space, in one round trip: whether its migration ledger `ledger` (a
/// validated, quoted name) exists, whether the login role `role` exists (`None` when not
/// asked), and [`tenant_table_names`]; `None` when the connection's schema does not exist
/// (a schema space not created, or dropped).
pub(super) async fn space_outline(
    conn: &mut PgConnection,
    ledger: &str,
    role: Option<&str>,
) -> Result<Option<(bool, Option<bool>, Vec<String>)>> {
    let (schema_exists, has_ledger, role_exists, tables): (bool, bool, Option<bool>, Vec<String>) =
        sqlx::query_as(
            "SELECT current_schema() IS NOT NULL, to_regclass($1) IS NOT NULL,
                CASE WHEN $2::text IS NOT NULL
                     THEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2::text) END,
                ARRAY(SELECT c.relname::text FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      JOIN pg_attribute a ON a.attrelid = c.oid
                      WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND a.attnum > 0
                        AND n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                        AND c.relname <> ALL($3)
                      ORDER BY 1)",
        )
        .bind(ledger)
        .bind(role)
        .bind(MOVE_TABLES)
        .fetch_one(&mut *conn)
        .await?;
    Ok(schema_exists.then_some((has_ledger, role_exists, tables)))
}

/// Base (and partitioned) tables of the current schema, without the control plane's ledgers.
pub(super) async fn application_tables(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
           AND c.relname <> ALL($1)
         ORDER BY 1",
    )
    .bind(LEDGERS)
    .fetch_all(&mut *conn)
    .await?)
}

/// Whether a (possibly schema-qualified, quoted) relation exists.
pub(super) async fn relation_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?)
}

/// Versions recorded as applied in a migration ledger (`ledger` is a validated, quoted name).
pub(super) async fn applied_versions(conn: &mut PgConnection, ledger: &str) -> Result<Vec<i64>> {
    if !relation_exists(conn, ledger).await? {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM {ledger} WHERE success ORDER BY version"
    )))
    .fetch_all(&mut *conn)
    .await?)
}

/// The newest migration applied, per the ledger.
pub(super) async fn schema_version(conn: &mut PgConnection, ledger: &str) -> Result<Option<i64>> {
    Ok(applied_versions(conn, ledger).await?.last().copied())
}
