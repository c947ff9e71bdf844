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

/// What the growth thresholds judge a tenant by.
pub(crate) fn usage(stats: &TenantStats) -> tenantry_core::growth::Usage {
    tenantry_core::growth::Usage {
        rows: stats.rows.clone(),
        size_bytes: stats.size_bytes,
        avg_query_ms: (stats.queries > 0).then(|| stats.query_ms_total / stats.queries as f64),
    }
}

/// A tenant the growth thresholds advise to move.
#[derive(Debug, Clone)]
pub struct Advice {
    pub tenant: tenantry_catalog::model::Tenant,
    pub stats: TenantStats,
    pub recommendation: tenantry_core::growth::Recommendation,
}

impl Orchestrator {
    /// Active tenants whose statistics cross a growth threshold (`placement.growth`), with the
    /// move advised; pinned tenants (a placement override) are left out. With `refresh`, each
    /// tenant's statistics are collected first; otherwise the recorded ones count (never
    /// collected: collected now).
    pub async fn placement_advice(&self, refresh: bool) -> Result<Vec<Advice>> {
        let rules = &self.config.placement.growth;
        let filter = tenantry_catalog::model::TenantFilter {
            state: Some(tenantry_core::TenantState::Active),
            ..Default::default()
        };
        let mut out = Vec::new();
        for tenant in self.catalog.tenants(&filter).await? {
            if self.config.placement.overrides.contains_key(&tenant.slug) {
                continue;
            }
            let stats = self.tenant_stats(&tenant.slug, refresh).await?;
            let rules = self.rules_for(&tenant, rules);
            if let Some(recommendation) =
                tenantry_core::growth::recommend(&rules, tenant.isolation, &usage(&stats))
            {
                out.push(Advice {
                    tenant,
                    stats,
                    recommendation,
                });
            }
        }
        Ok(out)
    }

    /// The growth rules as `tenant` can follow them: a rule to an isolation its shard's engine
    /// lacks advises the next more isolated one it has (on SQLite, which has no schemas, a file
    /// of its own), or nothing when there is none.
    pub(crate) fn rules_for(
        &self,
        tenant: &tenantry_catalog::model::Tenant,
        rules: &[tenantry_core::growth::GrowthRule],
    ) -> Vec<tenantry_core::growth::GrowthRule> {
        use tenantry_core::Isolation;
        let driver = tenant
            .space
            .as_ref()
            .and_then(|space| self.spaces.driver(&space.shard).ok());
        let supports = |isolation| driver.is_none_or(|d| d.supports(isolation));
        rules
            .iter()
            .filter_map(|rule| {
                let to = [Isolation::Shared, Isolation::Schema, Isolation::Database]
                    .into_iter()
                    .filter(|isolation| *isolation >= rule.to)
                    .find(|isolation| supports(*isolation))?;
                Some(tenantry_core::growth::GrowthRule {
                    to,
                    when: rule.when.clone(),
                })
            })
            .collect()
    }
}
