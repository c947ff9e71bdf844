//! The tenant-space driver trait, and the registry that finds the driver of a shard.

use crate::application::Application;
use crate::error::{Result, SpaceError};
use crate::postgres::PgSpaces;
use crate::sqlite::SqliteSpaces;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tenantry_core::space::Space;
use tenantry_core::{Engine, Isolation, Slug, TenantId};

/// What a driver observes of a tenant's space.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpaceStatus {
    /// Whether the space (file, schema, database) exists.
    pub exists: bool,
    /// The newest migration applied to it.
    pub schema_version: Option<i64>,
    /// How many admin users the tenant has in it.
    pub admins: i64,
    /// How many of the application's seeds are recorded for the tenant.
    pub seeds_applied: i64,
    /// How many rows carrying the tenant's id it holds, over all tables.
    pub tenant_rows: i64,
}

/// A tenant's (or a pooled database's) own database role. Its `Debug` never shows the
/// password, and it has no `Display`.
#[derive(Clone)]
pub struct Credentials {
    pub role: String,
    pub password: secrecy::SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A database created ahead of time for the warm pool.
#[derive(Debug, Clone)]
pub struct PooledDatabase {
    pub database: String,
    pub credentials: Credentials,
    pub schema_version: Option<i64>,
}

/// Creates, migrates, seeds, inspects and drops tenant spaces on one shard. Every method is
/// idempotent.
#[async_trait]
pub trait SpaceDriver: Send + Sync + 'static {
    /// The shard's engine.
    fn engine(&self) -> Engine;

    /// Where a tenant's space of `isolation` lives on this shard. Pure: creates nothing.
    fn locate(&self, tenant: TenantId, isolation: Isolation) -> Result<Space>;

    /// Whether this shard can host a space of `isolation`.
    fn supports(&self, isolation: Isolation) -> bool;

    /// Creates the space if it does not exist. Returns the tenant's own credentials where the
    /// space has a role of its own (a PostgreSQL database), with a fresh password each call.
    async fn create(&self, space: &Space) -> Result<Option<Credentials>>;

    /// Migrations `(version, description)` not yet applied to the space.
    async fn pending_migrations(&self, space: &Space) -> Result<Vec<(i64, String)>>;

    /// Creates an empty, migrated database for the warm pool.
    async fn create_pooled(&self) -> Result<PooledDatabase>;

    /// Turns a pooled database into `tenant`'s database space, with fresh credentials.
    async fn adopt(&self, pooled: &str, tenant: TenantId) -> Result<(Space, Credentials)>;

    /// Applies the application's pending migrations; returns the resulting version.
    async fn migrate(&self, space: &Space) -> Result<Option<i64>>;

    /// Applies the seeds not yet recorded for the tenant; returns how many ran.
    async fn seed(&self, space: &Space, tenant: TenantId, slug: &Slug) -> Result<usize>;

    /// Adds the tenant's first admin user unless it exists.
    async fn bootstrap_admin(&self, space: &Space, tenant: TenantId, email: &str) -> Result<()>;

    /// Observes the space.
    async fn status(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatus>;

    /// Removes the tenant's data: its rows from a shared space, or the whole space otherwise.
    /// Never touches another tenant's rows. A space that is already gone is fine.
    async fn remove(&self, space: &Space, tenant: TenantId) -> Result<()>;
}

/// The drivers of every known shard, by shard name.
#[derive(Clone, Default)]
pub struct Spaces {
    drivers: BTreeMap<String, Arc<dyn SpaceDriver>>,
}

/// What the registry needs to know of a shard to drive it.
#[derive(Debug, Clone)]
pub struct ShardTarget {
    pub name: String,
    pub engine: Engine,
    pub directory: Option<PathBuf>,
    pub url: Option<String>,
    /// The name of the region's shared database (PostgreSQL shards).
    pub shared_database: String,
}

impl Spaces {
    /// Builds a driver for each shard.
    pub fn new(app: &Application, shards: impl IntoIterator<Item = ShardTarget>) -> Result<Self> {
        let mut drivers: BTreeMap<String, Arc<dyn SpaceDriver>> = BTreeMap::new();
        for shard in shards {
            let driver: Arc<dyn SpaceDriver> = match shard.engine {
                Engine::Sqlite => {
                    let dir = shard.directory.ok_or_else(|| {
                        SpaceError::BadMigrations(format!(
                            "sqlite shard {} has no directory",
                            shard.name
                        ))
                    })?;
                    Arc::new(SqliteSpaces::new(&shard.name, dir, app.clone()))
                }
                Engine::Postgres => {
                    let url = shard.url.ok_or_else(|| {
                        SpaceError::BadMigrations(format!(
                            "postgres shard {} has no url",
                            shard.name
                        ))
                    })?;
                    Arc::new(PgSpaces::new(
                        &shard.name,
                        &url,
                        &shard.shared_database,
                        app.clone(),
                    )?)
                }
            };
            drivers.insert(shard.name, driver);
        }
        Ok(Self { drivers })
    }

    /// The driver of `shard`.
    pub fn driver(&self, shard: &str) -> Result<&Arc<dyn SpaceDriver>> {
        self.drivers
            .get(shard)
            .ok_or_else(|| SpaceError::UnknownShard(shard.to_owned()))
    }
}
