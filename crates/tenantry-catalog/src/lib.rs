//! The catalog: Tenantry's record of every tenant, what happened to it, what it announced, and
//! what is being done to it.
//!
//! ## What do we store?
//! - `shards`: the servers (or SQLite directories) tenant spaces live on, from the configuration
//!   and from `tenantry shard add`.
//! - `tenants`: one row per tenant, with its placement decision (rule and reason) and its space.
//!   Deleted tenants keep their row, in state `deleted`, for audit.
//! - `transitions`: every state change (from, to, trigger, actor, details, at).
//! - `outbox`: lifecycle events, in the same transaction as the change they describe.
//! - `operations` and `operation_steps`: durable operations with a checkpoint per step.
//! - `tenant_secrets`: tenants' credentials, sealed before they reach the catalog.
//! - `pool_databases`: the warm pool of databases created ahead of time, and who claimed them.
//! - `api_tokens` (hashes only), `idempotency_keys`, `sink_cursors` and `dead_letters`.
//!
//! The catalog's own migrations are recorded in `tenantry_catalog_migrations`.
//!
//! # Layout
//! - [`model`]: the records the catalog reads and writes.
//! - [`store`]: the [`CatalogStore`] trait every backend implements.
//! - [`sqlite`]: the embedded SQLite backend.
//! - [`postgres`]: the PostgreSQL backend, for many workers sharing the work.
//! - [`error`]: the catalog's error type.

pub mod error;
pub mod model;
pub mod postgres;
pub mod sqlite;
pub mod store;

pub use error::{CatalogError, Result};
pub use store::CatalogStore;

use std::sync::Arc;

/// Where the catalog records its own migrations, on both backends: not in `_sqlx_migrations`,
/// which a tenant application sharing the database may use for its own.
pub(crate) const MIGRATIONS_TABLE: &str = "tenantry_catalog_migrations";

/// Opens the catalog named by `url` (`sqlite:…`, `postgres://…` or `postgresql://…`) and
/// brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn CatalogStore>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteCatalog::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgCatalog::open(url).await?))
    } else {
        Err(CatalogError::UnsupportedUrl(url.to_owned()))
    }
}
