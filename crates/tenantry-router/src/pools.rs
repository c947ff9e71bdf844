//! Connection pools into tenant spaces, within a budget.
//!
//! PostgreSQL's `max_connections` is shared by every tenant of a server, so the router opens:
//! - **one pool per shared database** ([`SharedPools`]), as the application role: every shared
//!   and schema tenant of a region goes through it (the tenant is a per-transaction setting, the
//!   schema a per-transaction `search_path`), so a thousand schema tenants cost no more
//!   connections than one. SQLite's shared file gets one pool too.
//! - **a small pool per dedicated space** ([`TenantPools`]): a tenant's own database (as its own
//!   role) or its own SQLite file. These are created on first use and kept in LRU order under a
//!   global budget of connections: each pool holds as many permits of the budget as it may open
//!   connections, and gives them back only once closed, so the connections open never exceed the
//!   budget. When the budget is spent, the least recently used pool is closed (after its
//!   connections come back) to make room; pools unused for the idle time are closed by a sweep.
//!   Creating a pool connects to nothing, so creation under the lock is cheap, and it is double-
//!   checked: two requests for a tenant without a pool make one.

use crate::error::{Result, RouterError};
use lru::LruCache;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool into one engine's database.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    async fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Connections open now (idle or in use).
    fn size(&self) -> u32 {
        match self {
            Pool::Postgres(p) => p.size(),
            Pool::Sqlite(p) => p.size(),
        }
    }
}

/// Which database a pool reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PoolKey {
    /// A PostgreSQL database on a shard.
    Postgres { shard: String, database: String },
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// How to open a pool's connections.
pub(crate) enum Target {
    Postgres(Box<PgConnectOptions>),
    Sqlite(PathBuf),
}

impl Target {
    /// A pool of at most `size` connections, none opened yet.
    fn pool(self, size: u32, idle: Duration, acquire: Duration) -> Pool {
        match self {
            Target::Postgres(options) => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(size)
                    .min_connections(0)
                    .idle_timeout(idle)
                    .acquire_timeout(acquire)
                    .connect_lazy_with(*options),
            ),
            Target::Sqlite(path) => Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .min_connections(0)
                    .idle_timeout(idle)
                    .acquire_timeout(acquire)
                    .connect_lazy_with(
                        SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(false)
                            .journal_mode(SqliteJournalMode::Wal)
                            .foreign_keys(true)
                            .busy_timeout(Duration::from_secs(10)),
                    ),
            ),
        }
    }
}

/// Sizes and times of the pools.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSizes {
    pub shared: u32,
    pub per_tenant: u32,
    pub idle: Duration,
    pub acquire: Duration,
}

/// One pool per shared database.
pub(crate) struct SharedPools {
    sizes: PoolSizes,
    pools: Mutex<HashMap<PoolKey, Pool>>,
}

impl SharedPools {
    pub(crate) fn new(sizes: PoolSizes) -> Self {
        Self {
            sizes,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool into `key`, if it is open.
    pub(crate) fn cached(&self, key: &PoolKey) -> Option<Pool> {
        self.pools.lock().expect("shared pools").get(key).cloned()
    }

    /// The pool into `key`, made from `target` the first time.
    pub(crate) fn get(
        &self,
        key: &PoolKey,
        target: impl FnOnce() -> Result<Target>,
    ) -> Result<Pool> {
        let mut pools = self.pools.lock().expect("shared pools");
        if let Some(pool) = pools.get(key) {
            return Ok(pool.clone());
        }
        let pool = target()?.pool(self.sizes.shared, self.sizes.idle, self.sizes.acquire);
        pools.insert(key.clone(), pool.clone());
        Ok(pool)
    }

    pub(crate) async fn close(&self) {
        let pools: Vec<Pool> = self
            .pools
            .lock()
            .expect("shared pools")
            .drain()
            .map(|(_, p)| p)
            .collect();
        for pool in pools {
            pool.close().await;
        }
    }
}

struct TenantPool {
    pool: Pool,
    last_used: Instant,
    _permits: OwnedSemaphorePermit,
}

/// The pools of dedicated spaces, under a budget of connections.
pub(crate) struct TenantPools {
    sizes: PoolSizes,
    budget: Arc<Semaphore>,
    budget_size: usize,
    open: Mutex<LruCache<PoolKey, TenantPool>>,
}

impl TenantPools {
    /// At most `budget` connections open at once over all dedicated spaces.
    pub(crate) fn new(sizes: PoolSizes, budget: usize) -> Self {
        Self {
            sizes,
            budget: Arc::new(Semaphore::new(budget)),
            budget_size: budget,
            open: Mutex::new(LruCache::unbounded()),
        }
    }

    /// The pool into `key`, if it is open; counts as a use.
    pub(crate) fn cached(&self, key: &PoolKey) -> Option<Pool> {
        let mut open = self.open.lock().expect("tenant pools");
        open.get_mut(key).map(|entry| {
            entry.last_used = Instant::now();
            entry.pool.clone()
        })
    }

    /// The pool into `key`, made from `target` when it has none; waits for room in the budget,
    /// closing the least recently used pool to make it.
    pub(crate) async fn get(
        &self,
        key: &PoolKey,
        target: impl FnOnce() -> Result<Target>,
    ) -> Result<Pool> {
        if let Some(pool) = self.cached(key) {
            return Ok(pool);
        }
        let permits = self.room().await?;
        let mut open = self.open.lock().expect("tenant pools");
        if let Some(entry) = open.get_mut(key) {
            // Made by another request while this one waited for room; the permits go back.
            entry.last_used = Instant::now();
            return Ok(entry.pool.clone());
        }
        let pool = target()?.pool(self.sizes.per_tenant, self.sizes.idle, self.sizes.acquire);
        open.put(
            key.clone(),
            TenantPool {
                pool: pool.clone(),
                last_used: Instant::now(),
                _permits: permits,
            },
        );
        Ok(pool)
    }

    /// Permits for one more pool.
    async fn room(&self) -> Result<OwnedSemaphorePermit> {
        let need = self.sizes.per_tenant;
        loop {
            if let Ok(permits) = Arc::clone(&self.budget).try_acquire_many_owned(need) {
                return Ok(permits);
            }
            let victim = self.open.lock().expect("tenant pools").pop_lru();
            match victim {
                // Its permits return when it is dropped, after its connections closed.
                Some((_, entry)) => entry.pool.close().await,
                None => {
                    return Arc::clone(&self.budget)
                        .acquire_many_owned(need)
                        .await
                        .map_err(|_| RouterError::Database(sqlx::Error::PoolClosed));
                }
            }
        }
    }

    /// Closes the pools unused for the idle time; returns how many.
    pub(crate) async fn sweep(&self) -> usize {
        let idle = self.sizes.idle;
        let mut gone = Vec::new();
        {
            let mut open = self.open.lock().expect("tenant pools");
            while open
                .peek_lru()
                .is_some_and(|(_, entry)| entry.last_used.elapsed() >= idle)
            {
                gone.extend(open.pop_lru());
            }
        }
        let count = gone.len();
        for (_, entry) in gone {
            entry.pool.close().await;
        }
        count
    }

    /// Pools open, connections open in them, and the budget given out.
    pub(crate) fn usage(&self) -> (usize, u32, usize) {
        let open = self.open.lock().expect("tenant pools");
        let connections = open.iter().map(|(_, e)| e.pool.size()).sum();
        (
            open.len(),
            connections,
            self.budget_size - self.budget.available_permits(),
        )
    }

    pub(crate) async fn close(&self) {
        let pools: Vec<TenantPool> = {
            let mut open = self.open.lock().expect("tenant pools");
            std::iter::from_fn(|| open.pop_lru().map(|(_, e)| e)).collect()
        };
        for entry in pools {
            entry.pool.close().await;
        }
    }
}
