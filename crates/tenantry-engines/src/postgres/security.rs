//! Who may reach a space's rows once it is migrated.
//!
//! - **shared**: every table with a `tenant_id` column gets row-level security, enabled *and
//!   forced* (so it holds for the tables' owner too; only superusers, i.e. the control plane,
//!   bypass it), with the policy [`POLICY`]: `tenant_id = current_setting('tenantry.tenant_id',
//!   true)` for reading and writing. A session that has not set the tenant compares with NULL
//!   and sees nothing; applications set it with `set_config('tenantry.tenant_id', $1, true)`
//!   inside a transaction, so it can never outlive the transaction on a pooled connection.
//!   [`APP_ROLE`](super::APP_ROLE) gets DML on those tables, granted only *after* their policy is in place. There
//!   are deliberately no default privileges in the shared database: a table that a new migration
//!   creates (and maybe fills from another) would be readable by every tenant between the
//!   migration's commit and this step; granting here, in the same transaction as the policy,
//!   leaves no such window.
//! - **schema**: [`APP_ROLE`](super::APP_ROLE) gets USAGE on the tenant's schema, DML on its tables, and default
//!   privileges for the tables later migrations add. The wall between tenants is the schema
//!   (each application connection has one schema as its `search_path`); there is no RLS.
//! - **database**: the same for the database's own role, in its `public` schema.
//!
//! The control plane's ledgers (`_sqlx_migrations`, `tenantry_seeds`) are never granted.
//! Everything is changed only when missing: `ALTER TABLE … ROW LEVEL SECURITY` takes an ACCESS
//! EXCLUSIVE lock on a table every shared tenant is using, and each shared tenant's provisioning
//! runs this again.

use super::introspect::{LEDGERS, tenant_tables};
use super::sql::{ALREADY_EXISTS, exec};
use crate::error::Result;
use sqlx::PgConnection;
use tenantry_core::ident::quote;

/// The name of the row-level security policy on shared tables.
pub const POLICY: &str = "tenant_isolation";

/// The setting (transaction-local) that names the current tenant for row-level security.
pub const TENANT_SETTING: &str = "tenantry.tenant_id";

/// Enables and forces row-level security, with [`POLICY`], on every table of the current schema
/// that has a `tenant_id` column; returns those tables.
pub(super) async fn enforce_row_level_security(conn: &mut PgConnection) -> Result<Vec<String>> {
    let tables = tenant_tables(conn).await?;
    for table in &tables {
        let q = quote(table)?;
        let (enabled, forced, has_policy): (bool, bool, bool) = sqlx::query_as(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,
                    EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $2)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relname = $1",
        )
        .bind(table)
        .bind(POLICY)
        .fetch_one(&mut *conn)
        .await?;
        // The policy first: a table is never left with RLS on and no policy (which would hide
        // every row from the application rather than leak any, but still).
        if !has_policy {
            let sql = format!(
                "CREATE POLICY {POLICY} ON {q} FOR ALL
                 USING (tenant_id = current_setting('{TENANT_SETTING}', true))
                 WITH CHECK (tenant_id = current_setting('{TENANT_SETTING}', true))"
            );
            match exec(&mut *conn, sql).await {
                Err(e) if e.has_code(ALREADY_EXISTS) => {}
                other => other?,
            }
        }
        if !enabled {
            exec(
                &mut *conn,
                format!("ALTER TABLE {q} ENABLE ROW LEVEL SECURITY"),
            )
            .await?;
        }
        if !forced {
            exec(
                &mut *conn,
                format!("ALTER TABLE {q} FORCE ROW LEVEL SECURITY"),
            )
            .await?;
        }
        if !(has_policy && enabled && forced) {
            tracing::info!(table = table.as_str(), "row-level security enforced");
        }
    }
    Ok(tables)
}

/// Gives `role` USAGE on the current schema (`schema`), SELECT/INSERT/UPDATE/DELETE on
/// `tables` (never the ledgers) and USAGE/SELECT on its sequences; with `defaults`, also on the
/// tables and sequences created later in the schema by the current (admin) role.
pub(super) async fn grant(
    conn: &mut PgConnection,
    schema: &str,
    role: &str,
    tables: &[String],
    defaults: bool,
) -> Result<()> {
    let (schema_q, role_q) = (quote(schema)?, quote(role)?);
    let has_usage: bool = sqlx::query_scalar("SELECT has_schema_privilege($1, $2, 'USAGE')")
        .bind(role)
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?;
    if !has_usage {
        exec(
            &mut *conn,
            format!("GRANT USAGE ON SCHEMA {schema_q} TO {role_q}"),
        )
        .await?;
    }
    let tables: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| !LEDGERS.contains(t))
        .collect();
    let lacking: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relname = ANY($2)
           AND NOT (has_table_privilege($1, c.oid, 'SELECT')
                AND has_table_privilege($1, c.oid, 'INSERT')
                AND has_table_privilege($1, c.oid, 'UPDATE')
                AND has_table_privilege($1, c.oid, 'DELETE'))
         ORDER BY 1",
    )
    .bind(role)
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await?;
    for table in &lacking {
        exec(
            &mut *conn,
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {schema_q}.{} TO {role_q}",
                quote(table)?
            ),
        )
        .await?;
    }
    let sequences_lacking: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema()
           -- CASE, not AND: SQL does not promise to test relkind first, and
           -- has_sequence_privilege fails on anything but a sequence.
           AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege($1, c.oid, 'USAGE')
                    ELSE false END)",
    )
    .bind(role)
    .fetch_one(&mut *conn)
    .await?;
    if sequences_lacking {
        exec(
            &mut *conn,
            format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {role_q}"),
        )
        .await?;
    }
    if defaults && !has_default_privileges(conn, schema, role).await? {
        exec(
            &mut *conn,
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_q}
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role_q}"
            ),
        )
        .await?;
        exec(
            &mut *conn,
            format!(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_q}
                 GRANT USAGE, SELECT ON SEQUENCES TO {role_q}"
            ),
        )
        .await?;
    }
    Ok(())
}

/// Whether the current (admin) role's default privileges in `schema` already give `role` DML on
/// future tables and USAGE/SELECT on future sequences (`ALTER DEFAULT PRIVILEGES` commits a
/// catalog change even when it changes nothing).
async fn has_default_privileges(conn: &mut PgConnection, schema: &str, role: &str) -> Result<bool> {
    let granted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_default_acl d
         JOIN pg_namespace n ON n.oid = d.defaclnamespace
         CROSS JOIN LATERAL aclexplode(d.defaclacl) a
         WHERE n.nspname = $1
           AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
           AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2)
           AND ((d.defaclobjtype = 'r' AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))
             OR (d.defaclobjtype = 'S' AND a.privilege_type IN ('USAGE', 'SELECT')))",
    )
    .bind(schema)
    .bind(role)
    .fetch_one(&mut *conn)
    .await?;
    Ok(granted == 6)
}
