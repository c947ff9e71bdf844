//! Tenant spaces on SQLite: a directory per shard holding the region's shared database
//! (`shared.db`, on the region's shared shard) and one file per database tenant
//! (`tenant_<id>.db`).
//!
//! - [`SqliteSpaces`] (here): the driver: where each space lives, connections, migrations,
//!   seeds, status, removal.
//! - [`moves`]: a live move's building blocks between the shared file and a tenant's own file:
//!   change capture by triggers, batched copy, catch-up, the switch under the file's write lock,
//!   checksums.

use crate::application::Application;
use crate::driver::{Credentials, PooledDatabase, SpaceDriver, SpaceStatistics, SpaceStatus};
use crate::error::{Result, SpaceError};
use crate::tables::children_first;
use async_trait::async_trait;
use sqlx::migrate::MigrateError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tenantry_core::ident;
use tenantry_core::space::Space;
use tenantry_core::{Engine, Isolation, Slug, TenantId};
use uuid::Uuid;

pub mod moves;

/// The file name of a region's shared database.
pub const SHARED_FILE: &str = "shared.db";

/// Ledger of the seeds applied per tenant, kept inside each space.
const SEED_LEDGER: &str = "CREATE TABLE IF NOT EXISTS tenantry_seeds (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant_id, name)
)";

/// The SQLite driver of one shard.
pub struct SqliteSpaces {
    shard: String,
    directory: PathBuf,
    app: Application,
}

impl SqliteSpaces {
    pub fn new(shard: &str, directory: PathBuf, app: Application) -> Self {
        Self {
            shard: shard.to_owned(),
            directory,
            app,
        }
    }

    fn path_of(space: &Space) -> Result<&Path> {
        space
            .path
            .as_deref()
            .ok_or_else(|| SpaceError::Missing(format!("{space:?} has no file path")))
    }

    async fn connect(&self, path: &Path, create: bool) -> Result<SqliteConnection> {
        if create {
            std::fs::create_dir_all(&self.directory).map_err(|source| SpaceError::Io {
                action: "creating directory",
                path: self.directory.clone(),
                source,
            })?;
        } else if !path.exists() {
            return Err(SpaceError::Missing(path.display().to_string()));
        }
        let options = connect_options(path).create_if_missing(create);
        Ok(SqliteConnection::connect_with(&options).await?)
    }
}

/// How the driver opens a file: write-ahead log (readers never wait for the writer), foreign
/// keys on, and a busy timeout, so that a writer waits for the file's write lock (held by
/// another writer, or by a move's switch for a moment) instead of failing.
fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// How long a connection of the driver waits for a file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Tables with a `tenant_id` column, children before parents so that deleting in this order
/// never trips a foreign key (found from the schema, not hard-coded, so any application works).
/// A live move's own tables (its change log and registry) are not the tenant's data.
async fn tenant_tables(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master m
         WHERE m.type = 'table' AND m.name NOT IN (?, ?) AND EXISTS (
             SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant_id')
         ORDER BY m.name",
    )
    .bind(crate::moves::CHANGES)
    .bind(crate::moves::MOVING)
    .fetch_all(&mut *conn)
    .await?;
    let mut references = Vec::new();
    for t in &tables {
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)")
                .bind(t)
                .fetch_all(&mut *conn)
                .await?;
        references.extend(parents.into_iter().map(|p| (t.clone(), p)));
    }
    Ok(children_first(tables, references))
}

async fn table_exists(conn: &mut SqliteConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?
        > 0)
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SpaceError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[async_trait]
impl SpaceDriver for SqliteSpaces {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn sqlite(&self) -> Option<&SqliteSpaces> {
        Some(self)
    }

    fn locate(&self, tenant: TenantId, isolation: Isolation) -> Result<Space> {
        let file = match isolation {
            Isolation::Shared => SHARED_FILE.to_owned(),
            Isolation::Database => format!("tenant_{}.db", tenant.simple()),
            Isolation::Schema => {
                return Err(SpaceError::Unsupported {
                    engine: "sqlite",
                    isolation: "schema",
                });
            }
        };
        Ok(Space {
            kind: isolation,
            shard: self.shard.clone(),
            path: Some(self.directory.join(file)),
            database: None,
            schema: None,
        })
    }

    fn supports(&self, isolation: Isolation) -> bool {
        isolation != Isolation::Schema
    }

    async fn create(&self, space: &Space) -> Result<Option<Credentials>> {
        let mut conn = self.connect(Self::path_of(space)?, true).await?;
        sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
        conn.close().await?;
        Ok(None)
    }

    async fn pending_migrations(&self, space: &Space) -> Result<Vec<(i64, String)>> {
        let path = Self::path_of(space)?.to_path_buf();
        let migrator = self.app.migrator(Engine::Sqlite).await?;
        let mut conn = self.connect(&path, false).await?;
        let applied = applied_versions(&mut conn).await?;
        conn.close().await?;
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// The warm pool is a PostgreSQL feature: a SQLite file costs nothing to create.
    async fn create_pooled(&self) -> Result<PooledDatabase> {
        Err(SpaceError::NoWarmPool("sqlite"))
    }

    async fn adopt(
        &self,
        _pooled: &str,
        _tenant: TenantId,
        _pooled_credentials: Option<&Credentials>,
    ) -> Result<(Space, Credentials)> {
        Err(SpaceError::NoWarmPool("sqlite"))
    }

    async fn migrate(&self, space: &Space) -> Result<Option<i64>> {
        let path = Self::path_of(space)?.to_path_buf();
        let migrator = self.app.migrator(Engine::Sqlite).await?;
        let mut conn = self.connect(&path, false).await?;
        let space_name = path.display().to_string();
        // SQLite has no event triggers: the guard PostgreSQL's DDL_GUARD is, for the one path
        // that changes a space's schema, is this check (see `moves`).
        if let Some(tenants) = moves::tenants_under_move(&mut conn).await? {
            let applied = applied_versions(&mut conn).await?;
            if migrator.iter().any(|m| !applied.contains(&m.version)) {
                conn.close().await?;
                return Err(SpaceError::UnderMove {
                    space: space_name,
                    tenants,
                });
            }
        }
        // `run_direct` is sqlx's own way around the higher-ranked `Acquire` bound that `run`
        // puts on a future that must be `Send`.
        let mut raced = 0;
        loop {
            match migrator.run_direct(None, &mut conn, false).await {
                Ok(()) => break,
                // Another process migrating the same file (two `serve` workers provisioning a
                // region's first tenants at once) applied this migration first: SQLite has no
                // advisory lock, and sqlx's migrator takes none there. This run's attempt was
                // rolled back with its ledger row; the migrations left are run again.
                Err(MigrateError::ExecuteMigration(_, version))
                    if raced < migrator.iter().count()
                        && applied_versions(&mut conn).await?.contains(&version) =>
                {
                    raced += 1;
                }
                Err(MigrateError::VersionMismatch(version)) => {
                    return Err(SpaceError::MigrationChanged {
                        version,
                        space: space_name,
                    });
                }
                Err(source) => {
                    return Err(SpaceError::Migrate {
                        space: space_name,
                        source,
                    });
                }
            }
        }
        let version = schema_version(&mut conn).await?;
        conn.close().await?;
        Ok(version)
    }

    async fn seed(&self, space: &Space, tenant: TenantId, slug: &Slug) -> Result<usize> {
        let seeds = self.app.seeds()?;
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        sqlx::query(SEED_LEDGER).execute(&mut conn).await?;
        let mut applied = 0;
        for seed in seeds {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let recorded: Option<String> = sqlx::query_scalar(
                "SELECT checksum FROM tenantry_seeds WHERE tenant_id = ? AND name = ?",
            )
            .bind(tenant.to_string())
            .bind(&seed.name)
            .fetch_optional(&mut *tx)
            .await?;
            if seed.already_applied(recorded.as_deref(), slug)? {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(seed.render(tenant, slug)))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO tenantry_seeds (tenant_id, name, checksum) VALUES (?, ?, ?)")
                .bind(tenant.to_string())
                .bind(&seed.name)
                .bind(&seed.checksum)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            applied += 1;
        }
        conn.close().await?;
        Ok(applied)
    }

    async fn bootstrap_admin(&self, space: &Space, tenant: TenantId, email: &str) -> Result<()> {
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, role) VALUES (?, ?, ?, 'admin')
             ON CONFLICT (tenant_id, email) DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(tenant.to_string())
        .bind(email)
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    async fn status(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatus> {
        let path = Self::path_of(space)?;
        if !path.exists() {
            return Ok(SpaceStatus::default());
        }
        let mut conn = self.connect(path, false).await?;
        let mut status = SpaceStatus {
            exists: true,
            schema_version: schema_version(&mut conn).await?,
            ..SpaceStatus::default()
        };
        if table_exists(&mut conn, "users").await? {
            status.admins = sqlx::query_scalar(
                "SELECT count(*) FROM users WHERE tenant_id = ? AND role = 'admin'",
            )
            .bind(tenant.to_string())
            .fetch_one(&mut conn)
            .await?;
        }
        if table_exists(&mut conn, "tenantry_seeds").await? {
            status.seeds_applied =
                sqlx::query_scalar("SELECT count(*) FROM tenantry_seeds WHERE tenant_id = ?")
                    .bind(tenant.to_string())
                    .fetch_one(&mut conn)
                    .await?;
        }
        for table in tenant_tables(&mut conn).await? {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE tenant_id = ?",
                ident::quote(&table)?
            );
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .fetch_one(&mut conn)
                .await?;
            status.tenant_rows += n;
        }
        conn.close().await?;
        Ok(status)
    }

    async fn statistics(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatistics> {
        let path = Self::path_of(space)?;
        if !path.exists() {
            return Ok(SpaceStatistics::default());
        }
        let file_size = |path: &Path| std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
        // The write-ahead log holds committed pages not yet checkpointed into the file.
        let mut bytes = file_size(path);
        bytes += file_size(&PathBuf::from(format!("{}-wal", path.display())));
        let mut conn = self.connect(path, false).await?;
        let mut stats = SpaceStatistics::default();
        let (mut mine, mut all) = (0i64, 0i64);
        for table in tenant_tables(&mut conn).await? {
            if table == "tenantry_seeds" {
                continue;
            }
            let q = ident::quote(&table)?;
            let (n, total): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*) FILTER (WHERE tenant_id = ?), count(*) FROM {q}"
            )))
            .bind(tenant.to_string())
            .fetch_one(&mut conn)
            .await?;
            stats.rows.insert(table, n);
            mine += n;
            all += total;
        }
        conn.close().await?;
        if space.kind == Isolation::Shared {
            // The file is every shared tenant's: the tenant's share of its rows.
            bytes = if all == 0 { 0 } else { bytes * mine / all };
            stats.size_estimated = true;
        }
        stats.size_bytes = bytes;
        Ok(stats)
    }

    async fn remove(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let path = Self::path_of(space)?;
        match space.kind {
            Isolation::Shared => {
                if !path.exists() {
                    return Ok(());
                }
                let mut conn = self.connect(path, false).await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                for table in tenant_tables(&mut tx).await? {
                    let sql = format!("DELETE FROM {} WHERE tenant_id = ?", ident::quote(&table)?);
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(tenant.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                conn.close().await?;
            }
            _ => {
                let name = path.display().to_string();
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    remove_file(Path::new(&format!("{name}{suffix}")))?;
                }
            }
        }
        Ok(())
    }
}

/// The versions of the migrations applied to the connection's file.
async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<i64>> {
    if !table_exists(conn, "_sqlx_migrations").await? {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await?,
    )
}

async fn schema_version(conn: &mut SqliteConnection) -> Result<Option<i64>> {
    if !table_exists(conn, "_sqlx_migrations").await? {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_test_app(dir: &Path) -> Application {
        let storefront = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront");
        let _ = dir;
        Application::new(storefront.join("migrations"), storefront.join("seeds"))
    }

    #[tokio::test]
    async fn shared_tenants_are_created_seeded_and_dropped_without_touching_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let driver = SqliteSpaces::new(
            "eu-west-1",
            dir.path().to_path_buf(),
            make_test_app(dir.path()),
        );
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let slug = Slug::parse("acme").unwrap();
        let space = driver.locate(a, Isolation::Shared).unwrap();
        assert_eq!(space, driver.locate(b, Isolation::Shared).unwrap());
        for t in [a, b] {
            driver.create(&space).await.unwrap();
            let v = driver.migrate(&space).await.unwrap();
            assert!(v.is_some());
            assert!(driver.pending_migrations(&space).await.unwrap().is_empty());
            assert_eq!(driver.seed(&space, t, &slug).await.unwrap(), 1);
            assert_eq!(
                driver.seed(&space, t, &slug).await.unwrap(),
                0,
                "seeds run once"
            );
            for _ in 0..2 {
                driver
                    .bootstrap_admin(&space, t, "admin@acme.example")
                    .await
                    .unwrap();
            }
        }
        let before_b = driver.status(&space, b).await.unwrap();
        assert_eq!(before_b.admins, 1);
        driver.remove(&space, a).await.unwrap();
        driver.remove(&space, a).await.unwrap();
        assert_eq!(driver.status(&space, a).await.unwrap().tenant_rows, 0);
        assert_eq!(driver.status(&space, b).await.unwrap(), before_b);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_drivers_migrating_one_file_at_once_both_succeed() {
        // Two processes' drivers (two `serve` workers) provisioning a region's first tenants
        // race to migrate its shared file; the race is lost in some rounds, not all.
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let drivers = [0, 1].map(|_| {
                SqliteSpaces::new(
                    "eu-west-1",
                    dir.path().to_path_buf(),
                    make_test_app(dir.path()),
                )
            });
            let space = drivers[0]
                .locate(TenantId::generate(), Isolation::Shared)
                .unwrap();
            drivers[0].create(&space).await.unwrap();
            let (a, b) = tokio::join!(drivers[0].migrate(&space), drivers[1].migrate(&space));
            let (a, b) = (
                a.unwrap(),
                b.unwrap_or_else(|e| panic!("round {round}: {e}")),
            );
            assert!(a.is_some(), "round {round}");
            assert_eq!(a, b, "round {round}");
            assert!(
                drivers[0]
                    .pending_migrations(&space)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn a_database_tenant_gets_its_own_file_and_loses_it_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let driver = SqliteSpaces::new(
            "us-east-1",
            dir.path().to_path_buf(),
            make_test_app(dir.path()),
        );
        let t = TenantId::generate();
        let space = driver.locate(t, Isolation::Database).unwrap();
        driver.create(&space).await.unwrap();
        driver.create(&space).await.unwrap();
        assert_eq!(driver.pending_migrations(&space).await.unwrap().len(), 4);
        driver.migrate(&space).await.unwrap();
        driver.migrate(&space).await.unwrap();
        driver
            .bootstrap_admin(&space, t, "a@b.example")
            .await
            .unwrap();
        assert!(space.path.as_ref().unwrap().exists());
        driver.remove(&space, t).await.unwrap();
        assert!(!space.path.as_ref().unwrap().exists());
        assert_eq!(
            driver.status(&space, t).await.unwrap(),
            SpaceStatus::default()
        );
        assert!(driver.locate(t, Isolation::Schema).is_err());
    }
}
