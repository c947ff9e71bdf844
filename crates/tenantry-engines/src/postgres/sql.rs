//! Running statements built from identifiers, and reading SQLSTATEs.
//!
//! Statements that name databases, schemas, roles or tables cannot bind those names as
//! parameters. Every name is validated and quoted with [`tenantry_core::ident::quote`] before
//! it is formatted into a statement, and only such statements go through [`exec`], the one
//! place this driver asserts that formatted SQL is safe. Values are always bound.

use crate::error::{Result, SpaceError};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Executor, PgPool, Postgres, Transaction};

/// SQLSTATEs of "it exists already" when two creators race: duplicate_object, duplicate_schema,
/// and unique_violation on a system catalog's index when both passed the existence check.
pub(super) const ALREADY_EXISTS: &[&str] = &["42710", "42P06", "23505"];

/// duplicate_database.
pub(super) const DUPLICATE_DATABASE: &str = "42P04";

/// invalid_catalog_name: the database does not exist.
pub(super) const NO_SUCH_DATABASE: &str = "3D000";

/// Runs one statement whose identifiers were validated and quoted (see the module doc).
pub(super) async fn exec<'c, E>(executor: E, sql: String) -> Result<()>
where
    E: Executor<'c, Database = Postgres>,
{
    // The simple-query protocol: nothing is prepared or cached on the connection.
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(executor).await?;
    Ok(())
}

/// A transaction on the admin pool that holds the shard-wide lock for changes to databases' and
/// roles' catalog rows, for the statements that concurrent provisionings would otherwise run
/// at once: `GRANT`/`REVOKE … ON DATABASE` rewrite the database's row in `pg_database`, and two
/// sessions doing so at once fail with "tuple concurrently updated" (XX000, which no SQLSTATE
/// marks as retryable); two `CREATE ROLE`s of one name race likewise.
pub(super) async fn serialised(admin: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = admin.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key("tenantry/cluster-catalog"))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Runs statements in a [`serialised`] transaction.
pub(super) async fn exec_serialised(admin: &PgPool, statements: Vec<String>) -> Result<()> {
    let mut tx = serialised(admin).await?;
    for sql in statements {
        exec(&mut *tx, sql).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An advisory-lock key from a name (the first 8 bytes of its SHA-256).
pub(super) fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl SpaceError {
    /// Whether this is a database error with one of these SQLSTATEs.
    pub(super) fn has_code(&self, codes: &[&str]) -> bool {
        matches!(self, SpaceError::Database(e) if sqlstate_in(e, codes))
    }
}

/// Whether `e` is a database error with one of these SQLSTATEs.
pub(super) fn sqlstate_in(e: &sqlx::Error, codes: &[&str]) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| codes.contains(&c.as_ref())))
}
