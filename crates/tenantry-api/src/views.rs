//! Views that take more than one catalog read: shards with their tenant counts, regions with
//! their room left, plans, a tenant's storage. The API's handlers and the CLI's local mode both
//! build their answers here, so `tenantry … --server URL` prints exactly what the same command
//! prints on the catalog.

use crate::convert;
use tenantry_api_types::admin::{self, Plan};
use tenantry_api_types::responses::{self, Region, Shard, TenantStorage};
use tenantry_catalog::model::{self, TenantFilter};
use tenantry_core::config::Config;
use tenantry_core::shard::ShardState;
use tenantry_orchestrator::{Orchestrator, OrchestratorError};

/// Every plan of the configuration, by name.
pub fn plans(config: &Config) -> Vec<Plan> {
    config
        .plans
        .iter()
        .map(|(name, p)| convert::plan(name, p))
        .collect()
}

/// Every shard with its live tenants counted.
pub async fn shards(orch: &Orchestrator) -> Result<Vec<Shard>, OrchestratorError> {
    let tenants = orch.catalog().tenants(&TenantFilter::default()).await?;
    Ok(orch
        .catalog()
        .shards()
        .await?
        .into_iter()
        .map(|s| {
            let count = tenants.iter().filter(|t| t.shard == s.name).count();
            convert::shard(s, count)
        })
        .collect())
}

/// One shard, as [`shards`] shows it.
pub async fn shard(orch: &Orchestrator, name: &str) -> Result<Shard, OrchestratorError> {
    shards(orch)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| tenantry_catalog::CatalogError::ShardNotFound(name.to_owned()).into())
}

/// Every region of the configuration with its shards and the room its active shards have.
pub async fn regions(orch: &Orchestrator) -> Result<Vec<Region>, OrchestratorError> {
    let shards = orch.catalog().shards().await?;
    let config = orch.config();
    Ok(config
        .regions
        .keys()
        .map(|name| {
            let own: Vec<_> = shards.iter().filter(|s| &s.region == name).collect();
            Region {
                name: name.clone(),
                shared_shard: config.shared_shard(name).map(|s| s.name.clone()),
                shards: own.iter().map(|s| s.name.clone()).collect(),
                room_left: own
                    .iter()
                    .filter(|s| s.state == ShardState::Active)
                    .map(|s| s.capacity.saturating_sub(s.used))
                    .sum(),
            }
        })
        .collect())
}

/// The tenant's storage prefix, whether it exists, what it holds and the plan's quota.
pub async fn storage(
    orch: &Orchestrator,
    tenant: &model::Tenant,
) -> Result<TenantStorage, OrchestratorError> {
    let storage = orch.storage();
    let usage = storage.usage(&tenant.region, tenant.id).await?;
    Ok(TenantStorage {
        prefix: tenantry_infra::TenantStorage::prefix(&tenant.region, tenant.id).to_string(),
        location: storage.location().to_owned(),
        exists: storage.exists(&tenant.region, tenant.id).await?,
        objects: usage.objects,
        bytes: usage.bytes,
        quota_mb: orch.config().plan(&tenant.plan).map(|p| p.storage_quota_mb),
    })
}

/// Tenants past a growth threshold, with the move each is advised.
pub async fn placement_advice(
    orch: &Orchestrator,
    refresh: bool,
) -> Result<Vec<admin::PlacementAdvice>, OrchestratorError> {
    Ok(orch
        .placement_advice(refresh)
        .await?
        .into_iter()
        .map(|a| admin::PlacementAdvice {
            command: format!(
                "tenantry tenant move {} --to {}",
                a.tenant.slug, a.recommendation.to
            ),
            slug: a.tenant.slug,
            isolation: a.tenant.isolation.to_string(),
            advised: a.recommendation.to.to_string(),
            reason: a.recommendation.reason,
            rows: a.stats.rows.values().sum(),
            size_bytes: a.stats.size_bytes,
        })
        .collect())
}

/// The tenant's own compute as its runtime observes it (nothing to observe on shared compute).
/// A runtime that cannot be reached is shown as such, not as an error of the whole answer.
pub async fn compute(
    orch: &Orchestrator,
    tenant: &model::Tenant,
) -> Result<responses::TenantCompute, OrchestratorError> {
    let mut view = responses::TenantCompute {
        compute: tenant.compute,
        runtime: None,
        state: None,
        endpoint: None,
        detail: None,
    };
    if tenant.compute != tenantry_core::Compute::Dedicated {
        return Ok(view);
    }
    view.runtime = Some(orch.config().compute.runtime.as_str().to_owned());
    match orch.compute_status(tenant).await {
        Ok(Some(status)) => {
            view.state = Some(status.state.to_string());
            view.endpoint = status.endpoint;
            view.detail = status.detail;
        }
        Ok(None) => {}
        Err(e) => {
            view.state = Some("unknown".into());
            view.detail = Some(e.to_string());
        }
    }
    Ok(view)
}

/// The tenant's licence, verified.
pub async fn licence(
    orch: &Orchestrator,
    tenant: &model::Tenant,
) -> Result<responses::TenantLicence, OrchestratorError> {
    let public_key = orch.licence_key()?.public().to_base64();
    Ok(match orch.licence(tenant).await? {
        None => responses::TenantLicence {
            issued: false,
            valid: false,
            error: Some("no licence was issued".into()),
            licence: None,
            stale: Vec::new(),
            public_key,
        },
        Some(check) => responses::TenantLicence {
            issued: true,
            valid: check.verified.is_ok(),
            error: check.verified.as_ref().err().map(|e| e.to_string()),
            licence: check
                .verified
                .ok()
                .map(|l| serde_json::to_value(l).expect("licences serialise")),
            stale: check.stale,
            public_key,
        },
    })
}

/// A reconcile pass, for people and programs.
pub fn reconciliation(
    report: &tenantry_orchestrator::reconcile::ReconcileReport,
) -> responses::Reconciliation {
    use tenantry_orchestrator::reconcile::Outcome;
    responses::Reconciliation {
        started_at: report.started_at,
        finished_at: report.finished_at,
        dry_run: report.dry_run,
        tenants: report.tenants,
        drifts: report
            .drifts
            .iter()
            .map(|d| responses::Drift {
                tenant_id: d.tenant.id.0,
                slug: d.tenant.slug.clone(),
                kind: d.kind.as_str().to_owned(),
                detail: d.detail.clone(),
                repair: d.repair.clone(),
                outcome: match &d.outcome {
                    Outcome::Planned => "planned",
                    Outcome::Repaired => "repaired",
                    Outcome::Failed(_) => "failed",
                    Outcome::Reported => "reported",
                }
                .to_owned(),
                error: match &d.outcome {
                    Outcome::Failed(e) => Some(e.clone()),
                    _ => None,
                },
            })
            .collect(),
    }
}
