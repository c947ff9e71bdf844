//! The tenant router: how application code reaches a tenant's data without knowing where it
//! lives (the seeds' `TenantDatabaseResolver` and connection manager).
//!
//! ```no_run
//! # async fn demo(router: tenantry_router::Router) -> Result<(), tenantry_router::RouterError> {
//! use tenantry_router::TenantKey;
//! let mut tx = router.begin(&TenantKey::parse("acme")).await?;
//! let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
//!     .fetch_one(tx.postgres().expect("a PostgreSQL tenant"))
//!     .await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! [`Router::begin`] reads the tenant's place from the catalog (cached, see [`placement`]),
//! refuses a tenant that is not serving with a typed error, takes a connection from the pool of
//! that place (see [`pools`]) and opens a transaction scoped to the tenant (see [`tx`]): the same
//! SQL then reads and writes only the tenant's rows in a shared database (row-level security), a
//! schema or a database of its own. [`Router::transaction`] runs a closure in such a transaction
//! and holds it through a live move: while the tenant's writes are paused at the switch it
//! waits and tries again at the tenant's new place, for up to [`RouterOptions::hold`].
//!
//! # Layout
//! - [`key`]: how a request names a tenant (id, slug, host).
//! - `placement`: the catalog's record of each tenant, cached briefly.
//! - `pools`: a pool per shared database, and a budget-bounded LRU of per-tenant pools.
//! - [`tx`]: the scoped transaction.
//! - `stats`: query timings per tenant, flushed to the catalog.
//! - [`error`]: the router's typed errors.

pub mod error;
pub mod key;
mod placement;
mod pools;
mod stats;
pub mod tx;

pub use error::{Result, RouteError, RouterError, paused_for_move, rolled_back_by_conflict};
pub use key::TenantKey;
pub use tx::{Scoped, TenantTx};

use futures::future::BoxFuture;
use placement::PlacementCache;
use pools::{Pool, PoolKey, PoolSizes, SharedPools, Target, TenantPools};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use stats::QueryStats;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::{Shard, Tenant};
use tenantry_core::secrets::MasterKey;
use tenantry_core::space::Space;
use tenantry_core::{Isolation, TenantState};
use tenantry_engines::driver::{Credentials, DATABASE_SECRET};
use tenantry_engines::postgres::APP_ROLE;

/// How many times [`Router::transaction`] runs work again that a conflict rolled back.
pub const MAX_CONFLICT_RETRIES: u32 = 5;

/// How the router connects, and its budgets.
#[derive(Clone)]
pub struct RouterOptions {
    /// Opens dedicated tenants' credentials (the control plane's master key).
    pub master_key: Option<MasterKey>,
    /// The password of the application role `tenantry_app`, if the servers ask for one.
    pub app_password: Option<SecretString>,
    /// Connections of each shared database's pool.
    pub shared_connections: u32,
    /// Connections open at most into dedicated spaces, over all tenants.
    pub max_tenant_connections: usize,
    /// Connections of one dedicated tenant's pool.
    pub per_tenant_connections: u32,
    /// How long an unused dedicated pool (or idle connection) stays open.
    pub idle: Duration,
    /// How long the catalog's record of a tenant is trusted.
    pub placement_ttl: Duration,
    /// How long [`Router::transaction`] holds a request of a tenant whose writes are paused.
    pub hold: Duration,
    /// How often query timings go to the catalog.
    pub stats_interval: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            master_key: None,
            app_password: None,
            shared_connections: 10,
            max_tenant_connections: 50,
            per_tenant_connections: 2,
            idle: Duration::from_secs(60),
            placement_ttl: Duration::from_secs(1),
            hold: Duration::from_secs(5),
            stats_interval: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for RouterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterOptions")
            .field("shared_connections", &self.shared_connections)
            .field("max_tenant_connections", &self.max_tenant_connections)
            .field("per_tenant_connections", &self.per_tenant_connections)
            .field("idle", &self.idle)
            .field("placement_ttl", &self.placement_ttl)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

/// Routes application code to tenants' data. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<dyn CatalogStore>,
    options: RouterOptions,
    placements: PlacementCache,
    shards: Mutex<HashMap<String, Shard>>,
    shared: SharedPools,
    dedicated: TenantPools,
    stats: Arc<QueryStats>,
}

/// How many dedicated pools and connections are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Pools open.
    pub pools: usize,
    /// Connections open in those pools.
    pub connections: u32,
    /// Connections of the budget given out: to open pools, and to evicted ones still closing.
    pub reserved: usize,
}

impl Router {
    /// A router over `catalog`. Starts two background tasks (idle pools, query timings), which
    /// end with the last clone of the router; must be called within a Tokio runtime.
    pub fn new(catalog: Arc<dyn CatalogStore>, options: RouterOptions) -> Self {
        let per_tenant = options.per_tenant_connections.max(1);
        let sizes = PoolSizes {
            shared: options.shared_connections.max(1),
            per_tenant,
            idle: options.idle,
            acquire: options.hold.max(Duration::from_secs(5)),
        };
        let budget = options.max_tenant_connections.max(per_tenant as usize);
        let inner = Arc::new(Inner {
            placements: PlacementCache::new(Arc::clone(&catalog), options.placement_ttl),
            catalog,
            shards: Mutex::new(HashMap::new()),
            shared: SharedPools::new(sizes),
            dedicated: TenantPools::new(sizes, budget),
            stats: Arc::default(),
            options,
        });
        spawn_background(Arc::downgrade(&inner));
        Self { inner }
    }

    /// The tenant `key` names, refused unless it is serving.
    pub async fn tenant(&self, key: &TenantKey) -> Result<Arc<Tenant>> {
        let tenant = self.inner.placements.tenant(key).await?;
        serving(&tenant)?;
        Ok(tenant)
    }

    /// Opens a transaction in the tenant's space, scoped to it.
    pub async fn begin(&self, key: &TenantKey) -> Result<TenantTx> {
        let tenant = self.tenant(key).await?;
        let space = tenant
            .space
            .clone()
            .ok_or_else(|| RouterError::NotServing {
                slug: tenant.slug.clone(),
                state: tenant.state,
            })?;
        let schema = space
            .schema
            .as_deref()
            .map(tenantry_core::ident::quote)
            .transpose()
            .map_err(|e| unroutable(&tenant, &space, e.to_string()))?;
        let mut attempts = 0;
        let scoped = loop {
            let opened = match self.pool(&tenant, &space).await? {
                Pool::Postgres(pool) => pool
                    .begin_with(tx::begin_postgres(tenant.id, schema.as_deref()))
                    .await
                    .map(Scoped::Postgres),
                Pool::Sqlite(pool) => pool.begin().await.map(Scoped::Sqlite),
            };
            match opened {
                // A dedicated pool closed to make room between lookup and use: open it again.
                Err(sqlx::Error::PoolClosed) if attempts < 3 => attempts += 1,
                other => break other?,
            }
        };
        Ok(TenantTx::new(scoped, tenant, Arc::clone(&self.inner.stats)))
    }

    /// Runs `work` in a transaction scoped to the tenant and commits it. When the tenant's
    /// writes are paused for a move, rolls back, waits a moment, reads the tenant's place again
    /// and runs `work` anew, until [`RouterOptions::hold`] has passed
    /// ([`RouterError::Moving`]); when the server rolled it back to resolve a deadlock or a
    /// serialization failure, runs it again (up to [`MAX_CONFLICT_RETRIES`] times). `work` may
    /// therefore run more than once.
    pub async fn transaction<T, E, F>(&self, key: &TenantKey, mut work: F) -> Result<T, E>
    where
        E: RouteError,
        F: for<'t> FnMut(&'t mut TenantTx) -> BoxFuture<'t, Result<T, E>>,
    {
        let deadline = Instant::now() + self.inner.options.hold;
        let mut pause = Duration::from_millis(5);
        let mut conflicts = 0;
        loop {
            let mut tx = self.begin(key).await?;
            let tenant = tx.tenant().clone();
            let outcome = match work(&mut tx).await {
                Ok(value) => tx.commit().await.map(|()| value).map_err(E::from),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err(e) if e.is_conflict() && conflicts < MAX_CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::debug!(tenant = %tenant.slug, attempt = conflicts, "rolled back by a conflict; running it again");
                    tokio::time::sleep(Duration::from_millis(2 * u64::from(conflicts))).await;
                }
                Err(e) if e.is_paused_for_move() => {
                    self.inner.placements.forget(tenant.id);
                    if Instant::now() + pause > deadline {
                        return Err(RouterError::Moving { slug: tenant.slug }.into());
                    }
                    tracing::debug!(tenant = %tenant.slug, "writes paused for a move; holding the request");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Forgets what the router knows of a tenant's place: the next request reads the catalog.
    pub fn refresh(&self, tenant: tenantry_core::TenantId) {
        self.inner.placements.forget(tenant);
    }

    /// Writes the query timings recorded so far to the catalog.
    pub async fn flush_stats(&self) {
        self.inner.stats.flush(&self.inner.catalog).await;
    }

    /// Dedicated pools open now, and their connections.
    pub fn dedicated_usage(&self) -> PoolUsage {
        let (pools, connections, reserved) = self.inner.dedicated.usage();
        PoolUsage {
            pools,
            connections,
            reserved,
        }
    }

    /// Flushes query timings and closes every pool.
    pub async fn close(&self) {
        self.flush_stats().await;
        self.inner.dedicated.close().await;
        self.inner.shared.close().await;
    }

    async fn pool(&self, tenant: &Tenant, space: &Space) -> Result<Pool> {
        if let Some(path) = &space.path {
            let key = PoolKey::Sqlite(path.clone());
            let target = || Ok(Target::Sqlite(path.clone()));
            return match space.kind {
                Isolation::Database => self.inner.dedicated.get(&key, target).await,
                _ => self.inner.shared.get(&key, target),
            };
        }
        let database = space
            .database
            .clone()
            .ok_or_else(|| unroutable(tenant, space, "it names no database or file".into()))?;
        let key = PoolKey::Postgres {
            shard: space.shard.clone(),
            database: database.clone(),
        };
        // The common case, without reading the shard or the credentials again.
        let open = match space.kind {
            Isolation::Database => self.inner.dedicated.cached(&key),
            _ => self.inner.shared.cached(&key),
        };
        if let Some(pool) = open {
            return Ok(pool);
        }
        let server = self.server(tenant, space).await?;
        match space.kind {
            Isolation::Database => {
                let credentials = self.credentials(tenant).await?;
                let target = || {
                    Ok(Target::Postgres(Box::new(
                        server
                            .username(&credentials.role)
                            .password(credentials.password.expose_secret())
                            .database(&database),
                    )))
                };
                self.inner.dedicated.get(&key, target).await
            }
            Isolation::Shared | Isolation::Schema => {
                let app_password = self.inner.options.app_password.clone();
                let target = || {
                    let options = server.username(APP_ROLE).database(&database);
                    Ok(Target::Postgres(Box::new(match &app_password {
                        Some(p) => options.password(p.expose_secret()),
                        None => options,
                    })))
                };
                self.inner.shared.get(&key, target)
            }
        }
    }

    /// Connection options for the server of the space's shard, without user or database.
    async fn server(&self, tenant: &Tenant, space: &Space) -> Result<PgConnectOptions> {
        let cached = self
            .inner
            .shards
            .lock()
            .expect("shards")
            .get(&space.shard)
            .cloned();
        let shard = match cached {
            Some(shard) => shard,
            None => {
                let all = self.inner.catalog.shards().await?;
                let mut shards = self.inner.shards.lock().expect("shards");
                shards.extend(all.into_iter().map(|s| (s.name.clone(), s)));
                shards.get(&space.shard).cloned().ok_or_else(|| {
                    unroutable(
                        tenant,
                        space,
                        format!("no shard {:?} in the catalog", space.shard),
                    )
                })?
            }
        };
        let url = shard
            .url
            .as_deref()
            .ok_or_else(|| unroutable(tenant, space, "its shard has no URL".into()))?;
        let admin = PgConnectOptions::from_str(url)
            .map_err(|e| unroutable(tenant, space, format!("its shard's URL: {e}")))?;
        // Only where the server is and how to reach it; never the admin's identity.
        Ok(PgConnectOptions::new_without_pgpass()
            .host(admin.get_host())
            .port(admin.get_port())
            .ssl_mode(admin.get_ssl_mode())
            .application_name("tenantry-router"))
    }

    async fn credentials(&self, tenant: &Tenant) -> Result<Credentials> {
        let fail = |reason: &str| RouterError::Credentials {
            slug: tenant.slug.clone(),
            reason: reason.to_owned(),
        };
        let key = self.inner.options.master_key.as_ref().ok_or_else(|| {
            fail("the router has no master key (TENANTRY_MASTER_KEY or secrets.master_key_file)")
        })?;
        let sealed = self
            .inner
            .catalog
            .secret(tenant.id, DATABASE_SECRET)
            .await?
            .ok_or_else(|| fail("the catalog holds none"))?;
        Credentials::open(key, &tenant.id.to_string(), &sealed).map_err(|e| fail(&e.to_string()))
    }
}

/// Refuses a tenant that is not serving.
fn serving(tenant: &Tenant) -> Result<()> {
    match tenant.state {
        TenantState::Active => Ok(()),
        TenantState::Suspended => Err(RouterError::Suspended {
            slug: tenant.slug.clone(),
        }),
        state => Err(RouterError::NotServing {
            slug: tenant.slug.clone(),
            state,
        }),
    }
}

fn unroutable(tenant: &Tenant, space: &Space, reason: String) -> RouterError {
    RouterError::Unroutable {
        slug: tenant.slug.clone(),
        space: format!(
            "{}:{}",
            space.shard,
            space.database.as_deref().unwrap_or("-")
        ),
        reason,
    }
}

/// Closes idle dedicated pools and flushes query timings until the router is gone.
fn spawn_background(inner: Weak<Inner>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let tick = (strong.options.idle / 4)
        .min(strong.options.stats_interval)
        .max(Duration::from_millis(100));
    drop(strong);
    tokio::spawn(async move {
        let mut last_flush = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let Some(inner) = inner.upgrade() else { return };
            inner.dedicated.sweep().await;
            if last_flush.elapsed() >= inner.options.stats_interval {
                inner.stats.flush(&inner.catalog).await;
                last_flush = Instant::now();
            }
        }
    });
}
