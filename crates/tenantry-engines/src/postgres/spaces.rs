//! [`PgSpaces`], the driver of one PostgreSQL shard (a server).
//!
//! ## What lives where
//! - `shared`: the region's shared database (its name comes from the configuration, e.g.
//!   `tenantry_shared_eu_west`), schema `public`, many tenants' rows under forced row-level
//!   security (see [`super::security`]).
//! - `schema`: schema `t_<tenant id>` in the same database, with its own migration ledger
//!   `"t_<id>"._sqlx_migrations` and seed ledger.
//! - `database`: database `tenant_<tenant id>` (or an adopted pooled one, below), owned (with its
//!   tables) by the admin, and a login role of the same name, the only one besides superusers
//!   allowed to connect to it.
//! - the warm pool: databases `tenant_pool_<random hex>` with a role of the same name, migrated
//!   ahead of time. A tenant adopts one as it is, name and role (the catalog records each
//!   tenant's database): renaming a database needs it to have no session, and the driver keeps
//!   a warmed connection into the next pooled databases to be claimed (see
//!   [`PgSpaces::keep_warm`]), so that the tenant's first steps find a started backend.
//!
//! ## Connections
//! PostgreSQL's `max_connections` (100 by default) is shared by every tenant of a server, so:
//! one small admin pool per shard ([`ADMIN_POOL_SIZE`] connections, closed when idle, opened on
//! first use) to the admin URL's database, for what is cluster-wide (databases, roles); and for
//! work inside a space, a connection of its own to the space's database, at most
//! [`SPACE_CONNECTIONS`] at once per shard, parked for a moment after a clean call so that the
//! next step of the same operation does not pay for a new one (see
//! [`connections`](super::connections)). A space's schema is that
//! connection's `search_path`, given when connecting (never a `SET`, which would outlive its
//! user on a pooled connection). All of them connect as the admin, a superuser: superusers
//! bypass row-level security, which control-plane work (seeds, the first admin, status,
//! removal) needs.
//!
//! ## Migrations
//! sqlx's migrator with its own lock off (it locks a whole database, which would serialise every
//! schema of the shared database); instead a session advisory lock per schema
//! ([`PgSpaces::migration_lock_key`]) so that the schemas of one database migrate in parallel
//! but one schema never twice at once. Each migration is one transaction: a failed one leaves
//! the earlier ones applied and the next run resumes at it.

use super::connections::{SpaceConn, SpaceConnections, WARM_CONNECTIONS};
use super::introspect::{
    application_tables, applied_versions, current_schema, relation_exists, schema_version,
    space_outline, tenant_table_names, tenant_tables,
};
use super::roles::{self, APP_ROLE};
use super::security::{self, TENANT_SETTING};
use super::sql::{
    ALREADY_EXISTS, DUPLICATE_DATABASE, NO_SUCH_DATABASE, exec, exec_serialised, lock_key,
    sqlstate_in,
};
use crate::application::{Application, Seed};
use crate::driver::{Credentials, PooledDatabase, SpaceDriver, SpaceStatistics, SpaceStatus};
use crate::error::{Result, SpaceError};
use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;
use tenantry_core::ident::{quote, validate};
use tenantry_core::space::Space;
use tenantry_core::{Engine, Isolation, Slug, TenantId};
use tokio::sync::OnceCell;

/// Connections of a shard's admin pool.
pub const ADMIN_POOL_SIZE: u32 = 4;

/// Connections into tenant spaces a shard's driver holds at once.
pub const SPACE_CONNECTIONS: usize = 16;

/// How long an admin connection stays open unused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for an admin connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Prefix of the warm pool's databases (and roles).
pub const POOL_PREFIX: &str = "tenant_pool_";

/// The seed ledger of a space; `{table}` is its (qualified) name.
const SEED_LEDGER: &str = "CREATE TABLE IF NOT EXISTS {table} (
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
)";

/// The PostgreSQL driver of one shard.
pub struct PgSpaces {
    shard: String,
    /// The admin's connection options (a superuser).
    options: PgConnectOptions,
    shared_database: String,
    app: Application,
    /// Created on first use: building a driver connects to nothing.
    admin: OnceCell<PgPool>,
    space_connections: SpaceConnections,
    /// Held while warming pooled databases: a second caller waits and finds them warm.
    warming: tokio::sync::Mutex<()>,
}

/// Where a space lives, validated.
#[derive(Debug, Clone, Copy)]
enum Place<'a> {
    Shared { database: &'a str },
    Schema { database: &'a str, schema: &'a str },
    Database { database: &'a str },
}

impl<'a> Place<'a> {
    fn of(space: &'a Space) -> Result<Self> {
        let bad = || SpaceError::BadSpace(format!("{space:?}"));
        let database = validate(space.database.as_deref().ok_or_else(bad)?)?;
        Ok(match (space.kind, space.schema.as_deref()) {
            (Isolation::Shared, None) => Place::Shared { database },
            (Isolation::Database, None) => Place::Database { database },
            (Isolation::Schema, Some(schema)) => Place::Schema {
                database,
                schema: validate(schema)?,
            },
            _ => return Err(bad()),
        })
    }

    fn database(&self) -> &'a str {
        match *self {
            Place::Shared { database }
            | Place::Schema { database, .. }
            | Place::Database { database } => database,
        }
    }

    fn schema(&self) -> Option<&'a str> {
        match *self {
            Place::Schema { schema, .. } => Some(schema),
            _ => None,
        }
    }

    /// The schema a connection to the space works in.
    fn search_path(&self) -> &'a str {
        self.schema().unwrap_or("public")
    }

    /// The space's migration ledger, quoted (and qualified for a schema space).
    fn migrations_ledger(&self) -> Result<String> {
        Ok(match self.schema() {
            Some(schema) => format!("{}._sqlx_migrations", quote(schema)?),
            None => "_sqlx_migrations".to_owned(),
        })
    }

    /// The space's seed ledger, quoted (and qualified for a schema space).
    fn seed_ledger(&self) -> Result<String> {
        Ok(match self.schema() {
            Some(schema) => format!("{}.tenantry_seeds", quote(schema)?),
            None => "tenantry_seeds".to_owned(),
        })
    }

    fn label(&self, shard: &str) -> String {
        match self.schema() {
            Some(schema) => format!("{shard}/{}.{schema}", self.database()),
            None => format!("{shard}/{}", self.database()),
        }
    }
}

/// The advisory-lock key of migrations into `schema` (of some database).
fn migration_lock(schema: &str) -> i64 {
    lock_key(&format!("tenantry/migrate/{schema}"))
}

async fn database_exists<'c, E>(executor: E, name: &str) -> Result<bool>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(executor)
            .await?,
    )
}

/// Creates a space's seed ledger unless it exists. Concurrent `CREATE TABLE IF NOT EXISTS` of one
/// table can fail (on the catalog's unique indexes), so creators of one space's ledger take
/// turns.
async fn create_seed_ledger(conn: &mut PgConnection, place: &Place<'_>) -> Result<()> {
    let ledger = place.seed_ledger()?;
    if relation_exists(conn, &ledger).await? {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&format!(
            "tenantry/seed-ledger/{}",
            place.search_path()
        )))
        .execute(&mut *tx)
        .await?;
    exec(&mut *tx, SEED_LEDGER.replace("{table}", &ledger)).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies `seed` for `tenant` in `tx` unless the ledger records it; whether it ran. One
/// seeder per tenant and space at a time (a transaction lock).
async fn apply_seed(
    tx: &mut PgConnection,
    ledger: &str,
    seed: &Seed,
    tenant: TenantId,
    slug: &Slug,
) -> Result<bool> {
    // The tenant's id is also the RLS setting, for seeds that read it.
    sqlx::query("SELECT pg_advisory_xact_lock($1), set_config($2, $3, true)")
        .bind(lock_key(&format!("tenantry/seed/{tenant}")))
        .bind(TENANT_SETTING)
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let recorded: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT checksum FROM {ledger} WHERE tenant_id = $1 AND name = $2"
    )))
    .bind(tenant.to_string())
    .bind(&seed.name)
    .fetch_optional(&mut *tx)
    .await?;
    if seed.already_applied(recorded.as_deref(), slug)? {
        return Ok(false);
    }
    // The seed is the application's own file; the values substituted into it were validated
    // (a UUID, a slug).
    sqlx::raw_sql(AssertSqlSafe(seed.render(tenant, slug)))
        .execute(&mut *tx)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {ledger} (tenant_id, name, checksum) VALUES ($1, $2, $3)"
    )))
    .bind(tenant.to_string())
    .bind(&seed.name)
    .bind(&seed.checksum)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Makes `email` an admin user of `tenant`, unless it is one.
async fn insert_admin(conn: &mut PgConnection, tenant: TenantId, email: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (tenant_id, email, role) VALUES ($1, $2, 'admin')
         ON CONFLICT (tenant_id, email) DO NOTHING",
    )
    .bind(tenant.to_string())
    .bind(email)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Runs, on a new connection into a pooled database, what a provisioning will run there — the
/// seeds and the first admin of a made-up tenant, in a transaction rolled back, then the status
/// — so that the backend has read the tables' definitions and the statements are prepared
/// before a tenant claims the database: a cold backend spends milliseconds on each first.
async fn warm_up(conn: &mut PgConnection, place: &Place<'_>, seeds: &[Seed]) -> Result<()> {
    let tenant = TenantId::generate();
    let slug = Slug::parse("warm-up").expect("a valid slug");
    create_seed_ledger(conn, place).await?;
    let ledger = place.seed_ledger()?;
    let mut tx = conn.begin().await?;
    for seed in seeds {
        apply_seed(&mut tx, &ledger, seed, tenant, &slug).await?;
    }
    insert_admin(&mut tx, tenant, "warm-up@tenantry.invalid").await?;
    tx.rollback().await?;
    space_status(conn, place, tenant).await?;
    Ok(())
}

/// What [`SpaceDriver::status`] observes, on a connection into an existing database: two
/// round trips, the space's outline (nothing more when its schema is missing), then every count
/// (and its schema version) in one statement.
async fn space_status(
    conn: &mut PgConnection,
    place: &Place<'_>,
    tenant: TenantId,
) -> Result<SpaceStatus> {
    let ledger = place.migrations_ledger()?;
    let role = match *place {
        Place::Database { database } => Some(database),
        _ => None,
    };
    let Some((has_ledger, role_exists, tables)) = space_outline(conn, &ledger, role).await? else {
        return Ok(SpaceStatus::default());
    };
    let mut status = SpaceStatus {
        exists: true,
        role_exists,
        ..SpaceStatus::default()
    };
    // Rows are told apart by their position in `tables`; -1 is the admins' count, -2 the newest
    // migration applied.
    let mut parts = Vec::with_capacity(tables.len() + 2);
    for (i, table) in tables.iter().enumerate() {
        parts.push(format!(
            "SELECT {i} AS i, count(*) AS n FROM {} WHERE tenant_id = $1",
            quote(table)?
        ));
    }
    if tables.iter().any(|t| t == "users") {
        parts.push("SELECT -1, count(*) FROM users WHERE tenant_id = $1 AND role = 'admin'".into());
    }
    if has_ledger {
        parts.push(format!(
            "SELECT -2, max(version) FROM {ledger} WHERE success"
        ));
    }
    if parts.is_empty() {
        return Ok(status);
    }
    let rows: Vec<(i32, Option<i64>)> = sqlx::query_as(AssertSqlSafe(parts.join(" UNION ALL ")))
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await?;
    for (i, n) in rows {
        match (i, usize::try_from(i).ok().and_then(|i| tables.get(i))) {
            (-2, _) => status.schema_version = n,
            (_, None) => status.admins = n.unwrap_or(0),
            (_, Some(table)) => {
                let n = n.unwrap_or(0);
                status.tenant_rows += n;
                if table == "tenantry_seeds" {
                    status.seeds_applied = n;
                }
            }
        }
    }
    Ok(status)
}

impl PgSpaces {
    /// A driver for the shard `shard`, reached through `admin_url` (a superuser's URL, e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres`), whose region's shared database is
    /// `shared_database`. Connects to nothing until first used.
    pub fn new(
        shard: &str,
        admin_url: &str,
        shared_database: &str,
        app: Application,
    ) -> Result<Self> {
        validate(shared_database)?;
        let invalid = |source| SpaceError::InvalidShardUrl {
            shard: shard.to_owned(),
            source,
        };
        if !(admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://")) {
            return Err(invalid(sqlx::Error::Configuration(
                "the URL must start with postgres:// or postgresql://".into(),
            )));
        }
        let options = PgConnectOptions::from_str(admin_url)
            .map_err(invalid)?
            .application_name("tenantry");
        Ok(Self {
            shard: shard.to_owned(),
            options,
            shared_database: shared_database.to_owned(),
            app,
            admin: OnceCell::new(),
            space_connections: SpaceConnections::new(SPACE_CONNECTIONS),
            warming: tokio::sync::Mutex::new(()),
        })
    }

    /// The advisory-lock key that serialises migrations (and removal) of `space`, per database:
    /// one per schema, so that the schemas of one database migrate in parallel. Visible in
    /// `pg_locks` (`locktype = 'advisory'`, `classid`/`objid` its high/low 32 bits).
    pub fn migration_lock_key(space: &Space) -> i64 {
        migration_lock(space.schema.as_deref().unwrap_or("public"))
    }

    /// Closes the admin pool (if it was opened) and the parked connections into spaces.
    pub async fn close(&self) {
        self.space_connections.close_all().await;
        if let Some(pool) = self.admin.get() {
            pool.close().await;
        }
    }

    /// The shard's admin pool, created on first use.
    pub(super) async fn admin(&self) -> &PgPool {
        self.admin
            .get_or_init(|| async {
                // Statements that carry password verifiers go through this pool: sqlx does not
                // log its statements; the driver logs what it does, by name.
                super::connections::ping_when_idle(PgPoolOptions::new())
                    .max_connections(ADMIN_POOL_SIZE)
                    .min_connections(0)
                    .idle_timeout(IDLE_TIMEOUT)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(self.options.clone().disable_statement_logging())
            })
            .await
    }

    /// A connection into `place` (its schema as `search_path`). A missing database is
    /// [`SpaceError::Missing`].
    async fn open(&self, place: &Place<'_>) -> Result<SpaceConn> {
        let connections = &self.space_connections;
        if let Some(conn) = connections
            .take(place.database(), place.search_path())
            .await
        {
            return Ok(conn);
        }
        let permit = connections.permit().await?;
        let options = self
            .options
            .clone()
            .database(place.database())
            .options([("search_path", quote(place.search_path())?)]);
        match PgConnection::connect_with(&options).await {
            Ok(conn) => Ok(SpaceConnections::counted(conn, permit)),
            Err(e) if sqlstate_in(&e, &[NO_SUCH_DATABASE]) => {
                Err(SpaceError::Missing(place.label(&self.shard)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Self::open`] for a space.
    pub(super) async fn open_space(&self, space: &Space) -> Result<SpaceConn> {
        self.open(&Place::of(space)?).await
    }

    /// [`Self::open_existing`] for a space.
    pub(super) async fn open_existing_space(&self, space: &Space) -> Result<Option<SpaceConn>> {
        self.open_existing(&Place::of(space)?).await
    }

    /// [`Self::release`] for a space.
    pub(super) fn release_space(&self, space: &Space, conn: SpaceConn) {
        match Place::of(space) {
            Ok(place) => self.release(&place, conn),
            Err(_) => drop(conn),
        }
    }

    /// Ends a call into `place` that left `conn` clean (no transaction, no session lock): it
    /// may serve the next call into the same space.
    fn release(&self, place: &Place<'_>, conn: SpaceConn) {
        self.space_connections
            .release(place.database(), place.search_path(), conn);
    }

    /// Like [`Self::open`], `None` when the database or (for a schema space) the schema is
    /// missing.
    async fn open_existing(&self, place: &Place<'_>) -> Result<Option<SpaceConn>> {
        let mut conn = match self.open(place).await {
            Err(SpaceError::Missing(_)) => return Ok(None),
            other => other?,
        };
        if current_schema(&mut conn).await?.is_none() {
            conn.close().await?;
            return Ok(None);
        }
        Ok(Some(conn))
    }

    /// Creates a database unless it exists, and keeps `PUBLIC` out of it.
    async fn ensure_database(&self, name: &str) -> Result<()> {
        let admin = self.admin().await;
        let q = quote(name)?;
        if !database_exists(admin, name).await? {
            // CREATE DATABASE cannot run in a transaction; a concurrent creator is no error.
            match exec(admin, format!("CREATE DATABASE {q}")).await {
                Err(e) if e.has_code(&[DUPLICATE_DATABASE, "23505"]) => {}
                other => {
                    other?;
                    tracing::info!(shard = self.shard, database = name, "created database");
                }
            }
        }
        exec_serialised(
            admin,
            vec![format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE {q} FROM PUBLIC"
            )],
        )
        .await
    }

    /// Creates a dedicated database and its role (or gives the role a fresh password).
    async fn create_database(&self, database: &str) -> Result<Credentials> {
        self.ensure_database(database).await?;
        let credentials = roles::ensure_login_role(self.admin().await, database, database).await?;
        let place = Place::Database { database };
        let mut conn = self.open(&place).await?;
        // PostgreSQL 15 and later do this by default; older servers let PUBLIC create tables.
        exec(
            &mut *conn,
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        )
        .await?;
        create_seed_ledger(&mut conn, &place).await?;
        self.release(&place, conn);
        Ok(credentials)
    }

    async fn drop_database(&self, database: &str) -> Result<()> {
        self.space_connections.forget(database).await;
        let admin = self.admin().await;
        let q = quote(database)?;
        exec(admin, format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)")).await?;
        exec(admin, format!("DROP ROLE IF EXISTS {q}")).await?;
        tracing::info!(
            shard = self.shard,
            database,
            "dropped database and its role"
        );
        Ok(())
    }

    /// The application's migrator, writing to the space's own ledger.
    async fn migrator(&self, place: &Place<'_>) -> Result<Migrator> {
        let mut migrator = self.app.migrator(Engine::Postgres).await?;
        if let Some(schema) = place.schema() {
            migrator.dangerous_set_table_name(place.migrations_ledger()?);
            migrator.create_schema(quote(schema)?);
        }
        Ok(migrator)
    }

    async fn migrate_place(&self, place: &Place<'_>) -> Result<Option<i64>> {
        let migrator = self.migrator(place).await?;
        let key = migration_lock(place.search_path());
        let mut conn = self.open(place).await?;
        // A session lock: the migrator runs one transaction per migration. Closing (or losing)
        // the connection releases it too.
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        let migrated = self.migrate_locked(&mut conn, &migrator, place).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await;
        let version = migrated?;
        unlocked?;
        self.release(place, conn);
        Ok(version)
    }

    async fn migrate_locked(
        &self,
        conn: &mut PgConnection,
        migrator: &Migrator,
        place: &Place<'_>,
    ) -> Result<Option<i64>> {
        let label = place.label(&self.shard);
        // `run_direct` is sqlx's own way around the higher-ranked `Acquire` bound that `run`
        // puts on a future that must be `Send`.
        migrator
            .run_direct(None, &mut *conn, false)
            .await
            .map_err(|e| match e {
                MigrateError::VersionMismatch(version) => SpaceError::MigrationChanged {
                    version,
                    space: label.clone(),
                },
                source => SpaceError::Migrate {
                    space: label.clone(),
                    source,
                },
            })?;
        self.secure(conn, place).await?;
        let version = schema_version(conn, &place.migrations_ledger()?).await?;
        tracing::debug!(space = label, ?version, "migrated");
        Ok(version)
    }

    /// Row-level security and privileges, after migrating (see [`super::security`]).
    async fn secure(&self, conn: &mut PgConnection, place: &Place<'_>) -> Result<()> {
        let schema = current_schema(conn)
            .await?
            .ok_or_else(|| SpaceError::Missing(place.label(&self.shard)))?;
        match *place {
            Place::Shared { .. } => {
                let mut tx = conn.begin().await?;
                let tables = security::enforce_row_level_security(&mut tx).await?;
                security::grant(&mut tx, &schema, APP_ROLE, &tables, false).await?;
                tx.commit().await?;
            }
            Place::Schema { .. } => {
                let tables = application_tables(conn).await?;
                security::grant(conn, &schema, APP_ROLE, &tables, true).await?;
            }
            Place::Database { database } => {
                let tables = application_tables(conn).await?;
                security::grant(conn, &schema, database, &tables, true).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SpaceDriver for PgSpaces {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn postgres(&self) -> Option<&PgSpaces> {
        Some(self)
    }

    fn supports(&self, _isolation: Isolation) -> bool {
        true
    }

    fn locate(&self, tenant: TenantId, isolation: Isolation) -> Result<Space> {
        let (database, schema) = match isolation {
            Isolation::Shared => (self.shared_database.clone(), None),
            Isolation::Schema => (
                self.shared_database.clone(),
                Some(format!("t_{}", tenant.simple())),
            ),
            Isolation::Database => (format!("tenant_{}", tenant.simple()), None),
        };
        Ok(Space {
            kind: isolation,
            shard: self.shard.clone(),
            path: None,
            database: Some(database),
            schema,
        })
    }

    async fn create(&self, space: &Space) -> Result<Option<Credentials>> {
        let place = Place::of(space)?;
        match place {
            Place::Shared { database } | Place::Schema { database, .. } => {
                self.ensure_database(database).await?;
                roles::ensure_app_role(self.admin().await, database).await?;
                let mut conn = self.open(&place).await?;
                if let Some(schema) = place.schema() {
                    let q = quote(schema)?;
                    match exec(&mut *conn, format!("CREATE SCHEMA IF NOT EXISTS {q}")).await {
                        Err(e) if e.has_code(ALREADY_EXISTS) => {}
                        other => other?,
                    }
                    exec(
                        &mut *conn,
                        format!("GRANT USAGE ON SCHEMA {q} TO {APP_ROLE}"),
                    )
                    .await?;
                }
                create_seed_ledger(&mut conn, &place).await?;
                self.release(&place, conn);
                Ok(None)
            }
            Place::Database { database } => self.create_database(database).await.map(Some),
        }
    }

    async fn pending_migrations(&self, space: &Space) -> Result<Vec<(i64, String)>> {
        let place = Place::of(space)?;
        let migrator = self.migrator(&place).await?;
        let mut conn = self.open(&place).await?;
        let applied = applied_versions(&mut conn, &place.migrations_ledger()?).await?;
        self.release(&place, conn);
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    async fn migrate(&self, space: &Space) -> Result<Option<i64>> {
        self.migrate_place(&Place::of(space)?).await
    }

    async fn seed(&self, space: &Space, tenant: TenantId, slug: &Slug) -> Result<usize> {
        let place = Place::of(space)?;
        let seeds = self.app.seeds()?;
        let ledger = place.seed_ledger()?;
        let mut conn = self.open(&place).await?;
        create_seed_ledger(&mut conn, &place).await?;
        let mut applied = 0;
        for seed in &seeds {
            let mut tx = conn.begin().await?;
            if apply_seed(&mut tx, &ledger, seed, tenant, slug).await? {
                tx.commit().await?;
                applied += 1;
            }
        }
        self.release(&place, conn);
        Ok(applied)
    }

    async fn bootstrap_admin(&self, space: &Space, tenant: TenantId, email: &str) -> Result<()> {
        let place = Place::of(space)?;
        let mut conn = self.open(&place).await?;
        insert_admin(&mut conn, tenant, email).await?;
        self.release(&place, conn);
        Ok(())
    }

    async fn status(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatus> {
        let place = Place::of(space)?;
        let mut conn = match self.open(&place).await {
            Err(SpaceError::Missing(_)) => return Ok(SpaceStatus::default()),
            other => other?,
        };
        let status = space_status(&mut conn, &place, tenant).await?;
        self.release(&place, conn);
        Ok(status)
    }

    async fn statistics(&self, space: &Space, tenant: TenantId) -> Result<SpaceStatistics> {
        let place = Place::of(space)?;
        let Some(mut conn) = self.open_existing(&place).await? else {
            return Ok(SpaceStatistics::default());
        };
        let mut stats = SpaceStatistics::default();
        let mut share = 0f64;
        for table in tenant_table_names(&mut conn).await? {
            if table == "tenantry_seeds" {
                continue;
            }
            // The table's size, and for a shared table the tenant's rows' share of it.
            let (n, total, bytes): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*) FILTER (WHERE tenant_id = $1), count(*),
                        pg_total_relation_size($2::regclass)
                 FROM {}",
                quote(&table)?
            )))
            .bind(tenant.to_string())
            .bind(quote(&table)?)
            .fetch_one(&mut *conn)
            .await?;
            if total > 0 {
                share += bytes as f64 * n as f64 / total as f64;
            }
            stats.rows.insert(table, n);
        }
        stats.size_bytes =
            match place {
                Place::Shared { .. } => {
                    stats.size_estimated = true;
                    share.round() as i64
                }
                Place::Schema { .. } => sqlx::query_scalar(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')",
                )
                .fetch_one(&mut *conn)
                .await?,
                Place::Database { database } => {
                    sqlx::query_scalar("SELECT pg_database_size($1)")
                        .bind(database)
                        .fetch_one(&mut *conn)
                        .await?
                }
            };
        self.release(&place, conn);
        Ok(stats)
    }

    async fn remove(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let place = Place::of(space)?;
        match place {
            Place::Database { database } => self.drop_database(database).await,
            Place::Schema { schema, .. } => {
                let Some(mut conn) = self.open_existing(&place).await? else {
                    return Ok(());
                };
                // Not while it migrates.
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(Self::migration_lock_key(space))
                    .execute(&mut *conn)
                    .await?;
                exec(
                    &mut *conn,
                    format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)?),
                )
                .await?;
                conn.close().await?;
                tracing::info!(space = place.label(&self.shard), "dropped schema");
                Ok(())
            }
            Place::Shared { .. } => {
                let Some(mut conn) = self.open_existing(&place).await? else {
                    return Ok(());
                };
                let mut tx = conn.begin().await?;
                let mut rows = 0;
                for table in tenant_tables(&mut tx).await? {
                    rows += sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {} WHERE tenant_id = $1",
                        quote(&table)?
                    )))
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                self.release(&place, conn);
                tracing::info!(
                    space = place.label(&self.shard),
                    %tenant,
                    rows,
                    "removed a tenant's rows"
                );
                Ok(())
            }
        }
    }

    async fn create_pooled(&self) -> Result<PooledDatabase> {
        let database = format!("{POOL_PREFIX}{}", hex::encode(rand::random::<[u8; 10]>()));
        let created = async {
            let credentials = self.create_database(&database).await?;
            let schema_version = self
                .migrate_place(&Place::Database {
                    database: &database,
                })
                .await?;
            Ok(PooledDatabase {
                database: database.clone(),
                credentials,
                schema_version,
            })
        }
        .await;
        if let Err(e) = &created {
            // Nobody knows its name yet: do not leave it behind.
            tracing::warn!(shard = self.shard, database, error = %e, "creating a pooled database failed");
            if let Err(e) = self.drop_database(&database).await {
                tracing::warn!(shard = self.shard, database, error = %e, "dropping it failed too");
            }
        }
        created
    }

    async fn adopt(
        &self,
        pooled: &str,
        tenant: TenantId,
        pooled_credentials: Option<&Credentials>,
    ) -> Result<(Space, Credentials)> {
        if !pooled.starts_with(POOL_PREFIX) || validate(pooled).is_err() {
            return Err(SpaceError::NotPooled(pooled.to_owned()));
        }
        let place = Place::Database { database: pooled };
        // One round trip: whether the database is there, and whether its role's password is a
        // SCRAM verifier (`None`: no role).
        let (exists, scram): (bool, Option<bool>) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1),
                    (SELECT coalesce(rolpassword LIKE 'SCRAM-SHA-256$%', false)
                     FROM pg_authid WHERE rolname = $1)",
        )
        .bind(pooled)
        .fetch_one(self.admin().await)
        .await?;
        if !exists {
            return Err(SpaceError::NotPooled(pooled.to_owned()));
        }
        // The pooled role's password is handed over: it was generated for the pool, never
        // handed to anyone and kept sealed in the catalog, so it is as fresh as a new one, and
        // computing a verifier (PBKDF2, 4096 rounds) would be the largest cost of an adoption.
        // Otherwise (credentials unknown, a role lost, an MD5 password) a fresh one.
        let kept = pooled_credentials.filter(|c| c.role == pooled && scram == Some(true));
        let credentials = match kept {
            Some(kept) => kept.clone(),
            None => {
                let fresh = roles::ensure_login_role(self.admin().await, pooled, pooled).await?;
                if scram.is_none() {
                    // A role created anew needs its grants.
                    let mut conn = self.open(&place).await?;
                    self.secure(&mut conn, &place).await?;
                    self.release(&place, conn);
                }
                fresh
            }
        };
        tracing::info!(shard = self.shard, database = pooled, %tenant, "adopted a pooled database");
        Ok((Space::dedicated_database(&self.shard, pooled), credentials))
    }

    async fn tidy(&self) {
        let closed = self.space_connections.tidy().await;
        if closed > 0 {
            tracing::debug!(shard = self.shard, closed, "closed idle space connections");
        }
    }

    async fn keep_warm(&self, pooled: &[String]) -> Result<()> {
        let _warming = self.warming.lock().await;
        // Upkeep too: the connections the last claims parked are closed before new ones open.
        self.tidy().await;
        let warm = self.space_connections.warm_databases();
        let cold: Vec<&String> = pooled
            .iter()
            .take(WARM_CONNECTIONS)
            .filter(|database| !warm.contains(database))
            .collect();
        if cold.is_empty() {
            return Ok(());
        }
        let seeds = self.app.seeds()?;
        for database in cold {
            let place = Place::Database { database };
            let mut conn = self.open(&place).await?;
            match warm_up(&mut conn, &place, &seeds).await {
                Ok(()) => self.space_connections.keep_warm(database, conn),
                Err(e) => {
                    tracing::warn!(shard = self.shard, database, error = %e, "warming a pooled database failed");
                    let _ = conn.close().await;
                }
            }
        }
        Ok(())
    }
}
