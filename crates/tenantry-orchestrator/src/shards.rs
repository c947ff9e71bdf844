//! Shards registered at run time, draining, and the warm pool of pre-created databases.

use crate::error::{OrchestratorError, Result};
use crate::service::Orchestrator;
use std::sync::Arc;
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::{NewPoolEntry, Operation, OperationKind, PoolEntry, Shard, Tenant};
use tenantry_core::Slug;
use tenantry_core::config::ShardConfig;
use tenantry_core::shard::ShardState;
use tenantry_core::{Engine, Isolation, TenantId};
use tenantry_engines::driver::{Credentials, SpaceDriver};

pub use tenantry_engines::driver::DATABASE_SECRET;

/// Warms the free pooled databases of `shard`, in claim order.
async fn warm_pool(
    catalog: &dyn CatalogStore,
    driver: &dyn SpaceDriver,
    shard: &str,
) -> Result<()> {
    let entries = catalog.pool_entries(Some(shard)).await?;
    driver.keep_warm(&free_databases(&entries, shard)).await?;
    Ok(())
}

/// The free pooled databases of `shard` among `entries`, in claim order (oldest first).
fn free_databases(entries: &[PoolEntry], shard: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.shard == shard && e.claimed_by.is_none())
        .map(|e| e.database.clone())
        .collect()
}

impl Orchestrator {
    /// Registers a shard at run time, after checking it the way the configuration would be.
    pub async fn add_shard(&self, shard: ShardConfig) -> Result<Shard> {
        let bad = |m: String| Err(OrchestratorError::InvalidRequest(m));
        if let Err(e) = Slug::parse(&shard.name) {
            return bad(e.to_string().replace("slug", "shard name"));
        }
        if !self.config.regions.contains_key(&shard.region) {
            return Err(self.unknown_region(&shard.region));
        }
        match shard.engine {
            Engine::Postgres if shard.url.is_none() => {
                return bad("a postgres shard needs --url (an admin connection URL)".into());
            }
            Engine::Sqlite if shard.directory.is_none() => {
                return bad("a sqlite shard needs --directory".into());
            }
            _ => {}
        }
        if shard.capacity == 0 {
            return bad("--capacity must be at least 1".into());
        }
        Ok(self.catalog.add_shard(&shard).await?)
    }

    /// Drains a shard (no new tenants) or activates it again.
    pub async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard> {
        Ok(self.catalog.set_shard_state(name, state).await?)
    }

    /// Creates `count` migrated, empty databases on `shard` for later provisionings to claim,
    /// reporting the number done after each.
    pub async fn fill_pool(
        &self,
        shard: &str,
        count: u32,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<u32> {
        let driver = self.spaces.driver(shard)?;
        let key = self.master_key()?;
        for done in 1..=count {
            let pooled = driver.create_pooled().await?;
            let sealed = pooled.credentials.seal(key, &pooled.database);
            self.catalog
                .pool_add(NewPoolEntry {
                    shard: shard.to_owned(),
                    database: pooled.database,
                    secret: sealed,
                    schema_version: pooled.schema_version,
                })
                .await?;
            progress(done);
        }
        self.keep_pool_warm(shard).await?;
        Ok(count)
    }

    /// Has the driver of `shard` keep a warm connection into the free pooled databases the next
    /// claims will take (see [`SpaceDriver::keep_warm`]).
    pub async fn keep_pool_warm(&self, shard: &str) -> Result<()> {
        let driver = Arc::clone(self.spaces.driver(shard)?);
        warm_pool(self.catalog.as_ref(), driver.as_ref(), shard).await
    }

    /// Connection upkeep of every shard: warm connections into the pooled databases claims take
    /// next (see [`Self::keep_pool_warm`]), idle ones closed. `tenantry serve` runs it each pass,
    /// so that a restarted server warms the pools again.
    pub async fn shard_upkeep(&self) -> Result<()> {
        let entries = self.catalog.pool_entries(None).await?;
        for driver in self.spaces.drivers() {
            driver.tidy().await;
        }
        let mut shards: Vec<&str> = entries.iter().map(|e| e.shard.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            let free = free_databases(&entries, shard);
            self.spaces.driver(shard)?.keep_warm(&free).await?;
        }
        Ok(())
    }

    /// Upkeep once operation `op` of tenant `t` has ended, in the background so that it does
    /// not compete with the operation: after a database tenant's provisioning (it may have
    /// claimed a warm database) the pool's next databases are warmed; idle connections are
    /// closed.
    pub(crate) fn upkeep_after(&self, op: &Operation, t: Option<&Tenant>) {
        let drivers: Vec<Arc<dyn SpaceDriver>> = self.spaces.drivers().cloned().collect();
        let warm = t
            .filter(|_| op.kind == OperationKind::Provision)
            .and_then(|t| t.space.as_ref())
            .filter(|space| space.kind == Isolation::Database)
            .and_then(|space| {
                let driver = self.spaces.driver(&space.shard).ok()?;
                Some((space.shard.clone(), Arc::clone(driver)))
            });
        let catalog = Arc::clone(&self.catalog);
        tokio::spawn(async move {
            match warm {
                // Warming tidies the shard first, under the lock that makes a concurrent
                // `keep_pool_warm` wait for all of it.
                Some((shard, driver)) => {
                    if let Err(e) = warm_pool(catalog.as_ref(), driver.as_ref(), &shard).await {
                        tracing::warn!(%shard, error = %e, "warming the pool's next databases failed");
                    }
                }
                None => {
                    for driver in &drivers {
                        driver.tidy().await;
                    }
                }
            }
        });
    }

    /// A tenant's database credentials, sealed for the catalog.
    pub(crate) fn seal_credentials(
        &self,
        tenant: TenantId,
        credentials: &Credentials,
    ) -> Result<Vec<u8>> {
        Ok(credentials.seal(self.master_key()?, &tenant.to_string()))
    }

    /// Seals and stores a tenant's database credentials.
    pub(crate) async fn store_credentials(
        &self,
        tenant: TenantId,
        credentials: &Credentials,
    ) -> Result<()> {
        let sealed = self.seal_credentials(tenant, credentials)?;
        self.catalog
            .put_secret(tenant, DATABASE_SECRET, &sealed)
            .await?;
        Ok(())
    }

    /// A tenant's database credentials, opened; `None` when it has none stored.
    pub(crate) async fn credentials(&self, tenant: TenantId) -> Result<Option<Credentials>> {
        let Some(sealed) = self.catalog.secret(tenant, DATABASE_SECRET).await? else {
            return Ok(None);
        };
        Credentials::open(self.master_key()?, &tenant.to_string(), &sealed)
            .map(Some)
            .map_err(|e| OrchestratorError::InvalidRequest(e.to_string()))
    }

    /// Whether the tenant's database credentials are stored: its database exists.
    pub(crate) async fn has_credentials(&self, tenant: TenantId) -> Result<bool> {
        Ok(self
            .catalog
            .secret(tenant, DATABASE_SECRET)
            .await?
            .is_some())
    }
}
