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
    /// Whether the space's own login role exists, for a space that has one (a PostgreSQL
    /// database of the tenant's own).
    pub role_exists: Option<bool>,
}

/// How much a tenant holds, for placement decisions (`tenantry tenant stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpaceStatistics {
    /// Rows carrying the tenant's id, per table (the control plane's ledgers left out).
    pub rows: std::collections::BTreeMap<String, i64>,
    /// Bytes the tenant's data takes on disk.
    pub size_bytes: i64,
    /// Whether `size_bytes` is the tenant's share of a shared space (its rows' share of each
    /// table's size) rather than a measured size of its own.
    pub size_estimated: bool,
}

/// A tenant's (or a pooled database's) own database role. Its `Debug` never shows the
/// password, and it has no `Display`.
#[derive(Clone)]
pub struct Credentials {
    /// The role's name (also the name of its database).
    pub role: String,
    /// The role's password: generated, at least 32 characters of `[A-Za-z0-9]`.
    pub password: secrecy::SecretString,
}

/// The catalog secret (`CatalogStore::secret`) under which a tenant's database credentials are
/// kept, sealed for the tenant's id.
pub const DATABASE_SECRET: &str = "database";

impl Credentials {
    /// Opens credentials sealed by [`Credentials::seal`] for `owner`.
    pub fn open(
        key: &tenantry_core::secrets::MasterKey,
        owner: &str,
        sealed: &[u8],
    ) -> std::result::Result<Self, tenantry_core::secrets::SecretError> {
        #[derive(serde::Deserialize)]
        struct Sealed {
            role: String,
            password: String,
        }
        let plain = key.open(owner, sealed)?;
        let Sealed { role, password } = serde_json::from_slice(&plain)
            .map_err(|_| tenantry_core::secrets::SecretError::Unsealable)?;
        Ok(Self {
            role,
            password: password.into(),
        })
    }

    /// The credentials sealed with the master key for `owner` (a tenant's id, or a pooled
    /// database's name): the only form in which they are stored or sent anywhere.
    pub fn seal(&self, key: &tenantry_core::secrets::MasterKey, owner: &str) -> Vec<u8> {
        use secrecy::ExposeSecret;
        let plain = serde_json::json!({
            "role": self.role,
            "password": self.password.expose_secret(),
        });
        key.seal(owner, plain.to_string().as_bytes())
    }
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
    /// The database's name, `tenant_pool_<random hex>`; its role has the same name.
    pub database: String,
    /// The credentials of the database's own role.
    pub credentials: Credentials,
    /// The newest migration applied to it.
    pub schema_version: Option<i64>,
}

/// Creates, migrates, seeds, inspects and drops tenant spaces on one shard. Every method is
/// idempotent.
#[async_trait]
pub trait SpaceDriver: Send + Sync + 'static {
    /// The shard's engine.
    fn engine(&self) -> Engine;

    /// The PostgreSQL driver, for what only PostgreSQL shards do (live moves between shards).
    fn postgres(&self) -> Option<&crate::postgres::PgSpaces> {
        None
    }

    /// The SQLite driver, for what only SQLite shards do (live moves between files).
    fn sqlite(&self) -> Option<&crate::sqlite::SqliteSpaces> {
        None
    }

    /// Where a tenant's space of `isolation` lives on this shard. Pure: creates nothing.
    fn locate(&self, tenant: TenantId, isolation: Isolation) -> Result<Space>;

    /// Whether this shard can host a space of `isolation`.
    fn supports(&self, isolation: Isolation) -> bool;

    /// Creates the space if it does not exist. Returns the tenant's own credentials where the
    /// space has a role of its own (a PostgreSQL database), with a fresh password each call —
    /// also when a resumed step finds the database and role already there — so the caller
    /// stores (sealed) the credentials of the latest call; otherwise `None`.
    async fn create(&self, space: &Space) -> Result<Option<Credentials>>;

    /// Migrations `(version, description)` not yet applied to the space, in version order (for
    /// `tenantry migrate --dry-run`). Changes nothing.
    async fn pending_migrations(&self, space: &Space) -> Result<Vec<(i64, String)>>;

    /// Creates an empty, migrated database for the warm pool, with a role of its own.
    /// Engines without a warm pool (SQLite) return [`SpaceError::NoWarmPool`].
    async fn create_pooled(&self) -> Result<PooledDatabase>;

    /// Turns a pooled database into `tenant`'s database space, as it is (its name and role
    /// stay). Given the pooled database's credentials (as [`Self::create_pooled`] returned
    /// them), a driver hands over the pooled role's password — never handed to anyone — where
    /// it is valid; otherwise the role gets a fresh password.
    /// Engines without a warm pool (SQLite) return [`SpaceError::NoWarmPool`].
    async fn adopt(
        &self,
        pooled: &str,
        tenant: TenantId,
        pooled_credentials: Option<&Credentials>,
    ) -> Result<(Space, Credentials)>;

    /// Keeps a warmed connection into each of the first pooled databases of `pooled` (the free
    /// ones, in the order claims take them), so that the provisioning that claims one starts
    /// on a warm backend; tidies first (see [`Self::tidy`]). Nothing on engines without a warm
    /// pool.
    async fn keep_warm(&self, _pooled: &[String]) -> Result<()> {
        Ok(())
    }

    /// Closes the connections into spaces that sat idle too long or beyond what the driver
    /// keeps: upkeep, run off any operation's path (a connection's close costs the server a
    /// process exit). Nothing on engines that keep none.
    async fn tidy(&self) {}

    /// Applies the application's pending migrations; returns the resulting version.
    async fn migrate(&self, space: &Space) -> Result<Option<i64>>;

    /// Applies the seeds not yet recorded for the tenant; returns how many ran.
    async fn seed(&self, space: &Space, tenant: TenantId, slug: &Slug) -> Result<usize>;

    /// Adds the tenant's first admin user unless it exists.
    async fn bootstrap_admin(&self, space: &Space, tenant: TenantId, email: &str) -> Result<()>;

    /// Observes the space.
    async fn status(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatus>;

    /// The tenant's rows per table and the size of its data. A missing space has none.
    async fn statistics(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatistics>;

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
    /// The shard's name.
    pub name: String,
    /// The shard's engine.
    pub engine: Engine,
    /// The directory of a SQLite shard.
    pub directory: Option<PathBuf>,
    /// The admin (superuser) URL of a PostgreSQL shard.
    pub url: Option<String>,
    /// The name of the region's shared database (PostgreSQL shards).
    pub shared_database: String,
}

impl Spaces {
    /// Builds a driver for each shard. Connects to nothing: PostgreSQL drivers open their
    /// connections on first use.
    pub fn new(app: &Application, shards: impl IntoIterator<Item = ShardTarget>) -> Result<Self> {
        let mut drivers: BTreeMap<String, Arc<dyn SpaceDriver>> = BTreeMap::new();
        for shard in shards {
            let driver: Arc<dyn SpaceDriver> = match shard.engine {
                Engine::Sqlite => {
                    let dir = shard
                        .directory
                        .ok_or_else(|| SpaceError::MissingShardSetting {
                            shard: shard.name.clone(),
                            engine: "sqlite",
                            setting: "directory",
                        })?;
                    Arc::new(SqliteSpaces::new(&shard.name, dir, app.clone()))
                }
                Engine::Postgres => {
                    let url = shard.url.ok_or_else(|| SpaceError::MissingShardSetting {
                        shard: shard.name.clone(),
                        engine: "postgres",
                        setting: "url",
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

    /// Every shard's driver.
    pub fn drivers(&self) -> impl Iterator<Item = &Arc<dyn SpaceDriver>> {
        self.drivers.values()
    }

    /// The driver of `shard`.
    pub fn driver(&self, shard: &str) -> Result<&Arc<dyn SpaceDriver>> {
        self.drivers
            .get(shard)
            .ok_or_else(|| SpaceError::UnknownShard(shard.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn make_test_target(engine: Engine, url: Option<&str>) -> ShardTarget {
        ShardTarget {
            name: "eu-west-1".into(),
            engine,
            directory: None,
            url: url.map(str::to_owned),
            shared_database: "tenantry_shared_eu_west".into(),
        }
    }

    fn make_test_app() -> Application {
        Application::new("/nonexistent/migrations", "/nonexistent/seeds")
    }

    #[test]
    fn credentials_never_show_their_password() {
        let credentials = Credentials {
            role: "tenant_0190".into(),
            password: "hunter2hunter2hunter2hunter2hunter2".to_owned().into(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("tenant_0190"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(credentials.password.expose_secret().starts_with("hunter2"));
    }

    #[test]
    fn postgres_shards_are_built_without_connecting_and_need_a_url() {
        // Port 1 answers nobody: building must not try (and needs no runtime).
        let spaces = Spaces::new(
            &make_test_app(),
            [make_test_target(
                Engine::Postgres,
                Some("postgres://postgres@127.0.0.1:1/postgres"),
            )],
        )
        .unwrap();
        let driver = spaces.driver("eu-west-1").unwrap();
        assert_eq!(driver.engine(), Engine::Postgres);
        assert!(driver.supports(Isolation::Schema));

        let missing = Spaces::new(&make_test_app(), [make_test_target(Engine::Postgres, None)]);
        let err = missing.err().unwrap().to_string();
        assert!(err.contains("eu-west-1") && err.contains("url"), "{err}");

        let bad = Spaces::new(
            &make_test_app(),
            [make_test_target(Engine::Postgres, Some("mysql://nope"))],
        );
        assert!(matches!(bad, Err(SpaceError::InvalidShardUrl { .. })));
    }
}
