//! Tenant-space drivers: everything Tenantry does *inside* a tenant's space — create it, bring
//! its schema to the application's latest migration, seed it once, create its first admin,
//! check it, and drop it.
//!
//! Every operation is idempotent, because the orchestrator may run any of them again after a
//! crash: creating a space that exists, applying migrations already applied or seeds already
//! recorded, adding an admin that exists, or dropping a space that is gone all succeed without
//! doing anything twice.
//!
//! # Layout
//! - [`application`]: the tenant application's migrations and seeds, read from disk.
//! - [`driver`]: the [`SpaceDriver`] trait and the per-shard registry [`Spaces`].
//! - [`postgres`]: tenant spaces on PostgreSQL: row-level security, schemas, databases with
//!   roles of their own, and the warm pool.
//! - [`sqlite`]: tenant spaces as SQLite files (shared database or one file per tenant), and
//!   a live move's building blocks between them.
//! - [`moves`]: what a live move shares across engines (tables, checksums, key ranges).
//! - `tables`: the order (children before parents) in which a tenant's rows leave a shared
//!   space, for both engines.
//! - [`error`]: the layer's error type.

pub mod application;
pub mod driver;
pub mod error;
pub mod moves;
pub mod postgres;
pub mod sqlite;
mod tables;

pub use application::Application;
pub use driver::{Credentials, PooledDatabase, SpaceDriver, SpaceStatus, Spaces};
pub use error::{Result, SpaceError};
