//! Where each tenant lives, as the catalog says, cached for a moment.
//!
//! Every request names a tenant; reading its row from the catalog each time would put the catalog
//! on every request's path. So the router keeps what it read for [`ttl`](PlacementCache::new)
//! (a second by default), keyed by the name the request used (id, slug or host). The catalog
//! bumps a tenant's `epoch` whenever its place changes, and a move's write pause makes the old
//! place refuse the tenant's writes, so a stale entry can serve a read for at most the TTL and
//! never a write: on such a refusal the router drops every entry of that tenant
//! ([`PlacementCache::forget`]) and reads the catalog again.

use crate::error::{Result, RouterError};
use crate::key::TenantKey;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;
use tenantry_catalog::model::Tenant;
use tenantry_catalog::{CatalogError, CatalogStore};
use tenantry_core::TenantId;

/// Cached tenant records, by the key they were asked for with.
pub(crate) struct PlacementCache {
    catalog: Arc<dyn CatalogStore>,
    entries: Cache<TenantKey, Arc<Tenant>>,
}

/// Tenants cached at most (a few hundred bytes each).
const CAPACITY: u64 = 100_000;

impl PlacementCache {
    pub(crate) fn new(catalog: Arc<dyn CatalogStore>, ttl: Duration) -> Self {
        Self {
            catalog,
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The tenant `key` names, from the cache or the catalog.
    pub(crate) async fn tenant(&self, key: &TenantKey) -> Result<Arc<Tenant>> {
        if let Some(tenant) = self.entries.get(key) {
            return Ok(tenant);
        }
        let found = match key {
            TenantKey::Id(id) => self.catalog.tenant(*id).await,
            TenantKey::Slug(slug) => self.catalog.tenant_by_slug(slug).await,
            TenantKey::Host(domain) => self.catalog.tenant_by_domain(domain).await,
        };
        let tenant = Arc::new(match found {
            Ok(tenant) => tenant,
            Err(CatalogError::TenantNotFound(_) | CatalogError::DomainNotFound(_)) => {
                return Err(RouterError::UnknownTenant(key.to_string()));
            }
            Err(e) => return Err(e.into()),
        });
        self.entries.insert(key.clone(), Arc::clone(&tenant));
        Ok(tenant)
    }

    /// Drops every cached entry of `tenant`, whatever key it was cached under.
    pub(crate) fn forget(&self, tenant: TenantId) {
        // Only fails when invalidation closures are not enabled, and they are.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, cached| cached.id == tenant);
        self.entries.run_pending_tasks();
    }
}
