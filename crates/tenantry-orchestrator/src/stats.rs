//! Per-tenant statistics for placement decisions: rows per table and the size of its data,
//! collected from its space and kept in the catalog beside the query figures its router
//! reports.

use crate::error::{OrchestratorError, Result};
use crate::service::Orchestrator;
use tenantry_catalog::model::TenantStats;

impl Orchestrator {
    /// Collects a tenant's rows and size from its space now, records them, and returns its
    /// statistics. Counting reads every row of the tenant's tables (and, in a shared space, of
    /// the whole table, for the tenant's share of its size): run it off-peak on large shared
    /// spaces.
    pub async fn collect_stats(&self, slug: &str) -> Result<TenantStats> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let space = tenant.space.as_ref().ok_or_else(|| {
            OrchestratorError::InvalidRequest(format!(
                "tenant {slug} has no space (state {}): nothing to measure",
                tenant.state
            ))
        })?;
        let stats = self
            .spaces
            .driver(&space.shard)?
            .statistics(space, tenant.id)
            .await?;
        self.catalog
            .save_space_stats(
                tenant.id,
                &stats.rows,
                stats.size_bytes,
                stats.size_estimated,
            )
            .await?;
        Ok(self.catalog.tenant_stats(tenant.id).await?)
    }

    /// A tenant's recorded statistics, collected first if they never were or `refresh` asks.
    pub async fn tenant_stats(&self, slug: &str, refresh: bool) -> Result<TenantStats> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let recorded = self.catalog.tenant_stats(tenant.id).await?;
        if refresh || recorded.collected_at.is_none() {
            return self.collect_stats(slug).await;
        }
        Ok(recorded)
    }
}
