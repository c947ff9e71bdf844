//! A transaction scoped to one tenant.
//!
//! The scope is set inside the transaction and ends with it, so a pooled connection never
//! carries one tenant's scope to its next user:
//! - PostgreSQL: `SET LOCAL tenantry.tenant_id = 'id'` — the setting row-level security checks
//!   in the shared database — and, for a schema tenant, `SET LOCAL search_path = schema`, sent
//!   with the `BEGIN` in one round trip. Both end with the transaction, in every
//!   isolation, so the same application SQL works unchanged in all three.
//! - SQLite: the file is the tenant's (database isolation) or the region's shared file. SQLite has
//!   no row-level security: in its shared file the application's own `tenant_id` filters are the
//!   wall, which is why production tenants that need database-enforced isolation live on
//!   PostgreSQL.

use crate::error::Result;
use crate::stats::QueryStats;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};
use std::sync::Arc;
use std::time::Instant;
use tenantry_catalog::model::Tenant;
use tenantry_core::{Engine, TenantId};
use tenantry_engines::postgres::TENANT_SETTING;

/// The open transaction, per engine.
pub enum Scoped {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// A transaction in a tenant's space, scoped to the tenant. Commit it, or drop it to roll back.
pub struct TenantTx {
    scoped: Scoped,
    tenant: Arc<Tenant>,
    started: Instant,
    stats: Arc<QueryStats>,
}

/// The statement that opens a PostgreSQL transaction scoped to `tenant` (see the module doc),
/// sent as one simple query so that scoping costs no round trip of its own. `schema` is the
/// quoted name of the tenant's schema (see [`tenantry_core::ident::quote`]); without one the
/// search path stays the server's default, `public` first. The tenant id is a UUID.
pub(crate) fn begin_postgres(tenant: TenantId, schema: Option<&str>) -> AssertSqlSafe<String> {
    let mut statement = format!("BEGIN; SET LOCAL {TENANT_SETTING} = '{tenant}'");
    if let Some(schema) = schema {
        statement.push_str("; SET LOCAL search_path = ");
        statement.push_str(schema);
    }
    AssertSqlSafe(statement)
}

impl TenantTx {
    pub(crate) fn new(scoped: Scoped, tenant: Arc<Tenant>, stats: Arc<QueryStats>) -> Self {
        Self {
            scoped,
            tenant,
            started: Instant::now(),
            stats,
        }
    }

    /// The tenant, as the catalog described it when the transaction began.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The tenant's id (the value of `tenant_id` in its rows).
    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// The prefix for the tenant's keys in Redis (see [`TenantId::key_prefix`]).
    pub fn key_prefix(&self) -> String {
        self.tenant.id.key_prefix()
    }

    /// The engine of the tenant's space.
    pub fn engine(&self) -> Engine {
        match self.scoped {
            Scoped::Postgres(_) => Engine::Postgres,
            Scoped::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The transaction, per engine.
    pub fn scoped(&mut self) -> &mut Scoped {
        &mut self.scoped
    }

    /// The connection, when the tenant lives on PostgreSQL.
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.scoped {
            Scoped::Postgres(tx) => Some(&mut **tx),
            Scoped::Sqlite(_) => None,
        }
    }

    /// The connection, when the tenant lives on SQLite.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.scoped {
            Scoped::Sqlite(tx) => Some(&mut **tx),
            Scoped::Postgres(_) => None,
        }
    }

    /// Commits, and counts the transaction's time in the tenant's query statistics.
    pub async fn commit(self) -> Result<()> {
        let (tenant, started, stats) = (self.tenant.id, self.started, self.stats);
        match self.scoped {
            Scoped::Postgres(tx) => tx.commit().await?,
            Scoped::Sqlite(tx) => tx.commit().await?,
        }
        stats.record(tenant, started.elapsed());
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        match self.scoped {
            Scoped::Postgres(tx) => tx.rollback().await?,
            Scoped::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}
