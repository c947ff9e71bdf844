//! The tenant reconciler: for each tenant, the declared state (the catalog: its state, space,
//! schema version, storage prefix, compute, licence) against what is observed (the space and
//! its ledger, the storage marker, the compute runtime), and the difference repaired with the
//! orchestrator's ordinary, idempotent actions — the same ones provisioning, suspending and
//! deleting use — so a repair is exactly what the lifecycle would have done.
//!
//! One thing is never repaired: a tenant whose space is gone lost its data, and recreating the
//! space empty would hide that. It is reported (`DriftDetected` with `data_loss`) and the
//! tenant is marked `failed` for an operator.
//!
//! Tenants with an operation under way are left to it this pass.

use crate::error::Result;
use crate::service::Orchestrator;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tenantry_catalog::model::{Cause, Failure, NewEvent, Tenant, TenantFilter, TenantUpdate};
use tenantry_compute::ComputeState;
use tenantry_core::events::EventType;
use tenantry_core::{Compute, Isolation, TenantState};
use uuid::Uuid;

/// The actor the reconciler's changes are recorded under.
pub const TENANT_RECONCILER: &str = "reconciler";

/// What differs between a tenant's declared and observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// Its space is at an older schema version than the application's latest.
    SpaceBehind,
    /// Its database's own login role is gone.
    RoleMissing,
    /// Its storage prefix is missing.
    StorageMissing,
    /// It has no licence, or one that does not verify or no longer matches its plan.
    LicenceMissing,
    /// It is active with dedicated compute that is not running.
    ComputeDown,
    /// It is suspended and its compute still runs.
    ComputeOfSuspended,
    /// It is deleted (or left dedicated compute) and something of it remains.
    Leftovers,
    /// Its space is gone: data loss, reported and never recreated empty.
    DatabaseMissing,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::SpaceBehind => "space_behind",
            DriftKind::RoleMissing => "role_missing",
            DriftKind::StorageMissing => "storage_missing",
            DriftKind::LicenceMissing => "licence_missing",
            DriftKind::ComputeDown => "compute_down",
            DriftKind::ComputeOfSuspended => "compute_of_suspended",
            DriftKind::Leftovers => "leftovers",
            DriftKind::DatabaseMissing => "database_missing",
        }
    }
}

/// What became of a drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "error")]
pub enum Outcome {
    /// A dry run: this is what would be done.
    Planned,
    Repaired,
    Failed(String),
    /// Reported for an operator, not repaired (data loss).
    Reported,
}

/// One drift of one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDrift {
    pub tenant: Tenant,
    pub kind: DriftKind,
    /// Declared against observed, in words.
    pub detail: String,
    /// The repair, in words.
    pub repair: String,
    pub outcome: Outcome,
}

/// One pass over every tenant.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub dry_run: bool,
    pub tenants: usize,
    pub drifts: Vec<TenantDrift>,
    /// The last tenant of the pass's slice of the fleet: where the next slice starts.
    pub last: Option<tenantry_core::TenantId>,
}

/// A difference found, before it is repaired.
struct Finding {
    kind: DriftKind,
    detail: String,
    repair: &'static str,
}

impl Orchestrator {
    /// One reconcile pass over every tenant (see the module's documentation). With `dry_run`,
    /// finds and reports, and changes nothing.
    pub async fn reconcile_tenants(&self, dry_run: bool) -> Result<ReconcileReport> {
        self.reconcile_slice(dry_run, None, usize::MAX).await
    }

    /// A reconcile pass over at most `limit` tenants: the next ones after `after` in id order,
    /// wrapping around to the first, so that a fleet too large for one pass is covered by
    /// several (the report's `last` is where the next one starts).
    pub async fn reconcile_slice(
        &self,
        dry_run: bool,
        after: Option<tenantry_core::TenantId>,
        limit: usize,
    ) -> Result<ReconcileReport> {
        let started_at = Utc::now();
        let mut fleet = self
            .catalog
            .tenants(&TenantFilter {
                include_deleted: true,
                ..TenantFilter::default()
            })
            .await?;
        fleet.sort_by_key(|t| t.id);
        let start = after.map_or(0, |after| fleet.partition_point(|t| t.id <= after));
        let slice: Vec<Tenant> = fleet
            .iter()
            .cycle()
            .skip(start)
            .take(limit.min(fleet.len()))
            .cloned()
            .collect();
        let last = slice.last().map(|t| t.id);
        let mut drifts = Vec::new();
        let mut looked_at = 0;
        for tenant in slice {
            if !matches!(
                tenant.state,
                TenantState::Active | TenantState::Suspended | TenantState::Deleted
            ) || self.has_open_operation(&tenant).await?
            {
                continue;
            }
            looked_at += 1;
            for finding in self.observe(&tenant).await? {
                let outcome = if dry_run {
                    Outcome::Planned
                } else {
                    self.repair(&tenant, &finding).await
                };
                let drift = TenantDrift {
                    tenant: tenant.clone(),
                    kind: finding.kind,
                    detail: finding.detail,
                    repair: finding.repair.to_owned(),
                    outcome,
                };
                if !dry_run {
                    self.publish_drift(&drift).await?;
                }
                drifts.push(drift);
            }
        }
        Ok(ReconcileReport {
            started_at,
            finished_at: Utc::now(),
            dry_run,
            tenants: looked_at,
            drifts,
            last,
        })
    }

    async fn has_open_operation(&self, t: &Tenant) -> Result<bool> {
        Ok(self
            .catalog
            .operations(Some(t.id), 1)
            .await?
            .first()
            .is_some_and(|op| op.state.is_open()))
    }

    /// What differs for one tenant.
    async fn observe(&self, t: &Tenant) -> Result<Vec<Finding>> {
        let mut found = Vec::new();
        let runtime = if t.compute == Compute::Dedicated || t.state == TenantState::Deleted {
            Some(self.compute_runtime().await?)
        } else {
            None
        };
        if t.state == TenantState::Deleted {
            let mut what = Vec::new();
            if let Some(space) = &t.space {
                let status = self
                    .spaces
                    .driver(&space.shard)?
                    .status(space, t.id)
                    .await?;
                let remains = match space.kind {
                    Isolation::Shared => status.tenant_rows > 0,
                    Isolation::Schema | Isolation::Database => status.exists,
                };
                if remains {
                    what.push(format!("its {} space", space.kind));
                }
            }
            if self.storage.exists(&t.region, t.id).await? {
                what.push("its storage prefix".to_owned());
            }
            if let Some(runtime) = runtime
                && runtime.status(t.id).await?.state.exists()
            {
                what.push(format!("its {} compute", runtime.name()));
            }
            if !what.is_empty() {
                found.push(Finding {
                    kind: DriftKind::Leftovers,
                    detail: format!("deleted, but {} remain", what.join(", ")),
                    repair: "remove them",
                });
            }
            return Ok(found);
        }

        let Some(space) = &t.space else {
            return Ok(found);
        };
        let driver = self.spaces.driver(&space.shard)?;
        let status = driver.status(space, t.id).await?;
        if !status.exists {
            found.push(Finding {
                kind: DriftKind::DatabaseMissing,
                detail: format!("its {} space on shard {} does not exist", space.kind, space.shard),
                repair: "none: data loss is reported and the tenant marked failed, never recreated empty",
            });
            return Ok(found);
        }
        if status.role_exists == Some(false) {
            found.push(Finding {
                kind: DriftKind::RoleMissing,
                detail: format!(
                    "the login role of its database {} is gone",
                    space.database.as_deref().unwrap_or_default()
                ),
                repair: "recreate it with a new password and its grants, and restart its compute",
            });
        }
        let latest = self.app.latest_version(driver.engine()).await?;
        if status.schema_version < latest {
            found.push(Finding {
                kind: DriftKind::SpaceBehind,
                detail: format!(
                    "its space is at version {}, the application's latest is {}",
                    or_none(status.schema_version),
                    or_none(latest)
                ),
                repair: "migrate it",
            });
        }
        if !self.storage.exists(&t.region, t.id).await? {
            found.push(Finding {
                kind: DriftKind::StorageMissing,
                detail: format!(
                    "its storage prefix {} is missing",
                    self.storage.url_of(&t.region, t.id)
                ),
                repair: "recreate it",
            });
        }
        let licence = match self.licence(t).await? {
            None => Some("it has no licence".to_owned()),
            Some(check) => match check.verified {
                Err(e) => Some(format!("its licence does not verify: {e}")),
                Ok(_) if !check.stale.is_empty() => {
                    Some(format!("its licence is stale: {}", check.stale.join("; ")))
                }
                Ok(_) => None,
            },
        };
        if let Some(detail) = licence {
            found.push(Finding {
                kind: DriftKind::LicenceMissing,
                detail,
                repair: "issue a licence for its plan",
            });
        }
        if let Some(runtime) = runtime {
            let compute = runtime.status(t.id).await?;
            match (t.state, compute.state) {
                (TenantState::Active, state) if state != ComputeState::Running => {
                    found.push(Finding {
                        kind: DriftKind::ComputeDown,
                        detail: format!(
                            "active, its {} compute is {state}{}",
                            runtime.name(),
                            compute
                                .detail
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default()
                        ),
                        repair: "start it",
                    });
                }
                (TenantState::Suspended, ComputeState::Running | ComputeState::Unhealthy) => {
                    found.push(Finding {
                        kind: DriftKind::ComputeOfSuspended,
                        detail: format!("suspended, its {} compute still runs", runtime.name()),
                        repair: "stop it",
                    });
                }
                _ => {}
            }
        } else if t.compute == Compute::Shared {
            let runtime = self.compute_runtime().await?;
            if runtime.status(t.id).await?.state.exists() {
                found.push(Finding {
                    kind: DriftKind::Leftovers,
                    detail: format!(
                        "on shared compute, but its {} compute remains",
                        runtime.name()
                    ),
                    repair: "remove it",
                });
            }
        }
        Ok(found)
    }

    /// Repairs one finding with the lifecycle's own actions.
    async fn repair(&self, t: &Tenant, finding: &Finding) -> Outcome {
        if finding.kind == DriftKind::DatabaseMissing {
            return match self.mark_data_loss(t, &finding.detail).await {
                Ok(()) => Outcome::Reported,
                Err(e) => Outcome::Failed(e.to_string()),
            };
        }
        let done: Result<()> = async {
            match finding.kind {
                DriftKind::SpaceBehind => {
                    let space = t.space.as_ref().expect("observed with a space");
                    self.migrate_space(t, space).await?;
                }
                DriftKind::RoleMissing => {
                    let space = t.space.as_ref().expect("observed with a space");
                    let driver = self.spaces.driver(&space.shard)?;
                    // Creating is idempotent: the database stays, the role comes back with a
                    // fresh password; migrating grants it the tables again.
                    if let Some(credentials) = driver.create(space).await? {
                        self.store_credentials(t.id, &credentials).await?;
                    }
                    driver.migrate(space).await?;
                    if t.state == TenantState::Active && t.compute == Compute::Dedicated {
                        self.stop_compute(t).await?;
                        self.ensure_compute(t).await?;
                    }
                }
                DriftKind::StorageMissing => {
                    self.storage.ensure(&t.region, t.id, &t.slug).await?;
                }
                DriftKind::LicenceMissing => self.issue_licence(t).await?,
                DriftKind::ComputeDown => {
                    self.ensure_compute(t).await?;
                }
                DriftKind::ComputeOfSuspended => self.stop_compute(t).await?,
                DriftKind::Leftovers => {
                    self.remove_compute(t).await?;
                    if t.state == TenantState::Deleted {
                        if let Some(space) = &t.space {
                            self.spaces
                                .driver(&space.shard)?
                                .remove(space, t.id)
                                .await?;
                        }
                        self.storage.remove(&t.region, t.id).await?;
                        self.catalog.delete_secrets(t.id).await?;
                    }
                }
                DriftKind::DatabaseMissing => unreachable!("reported above, never repaired"),
            }
            Ok(())
        }
        .await;
        match done {
            Ok(()) => Outcome::Repaired,
            Err(e) => {
                tracing::warn!(tenant = %t.slug, kind = finding.kind.as_str(), error = %e, "repair failed");
                Outcome::Failed(e.to_string())
            }
        }
    }

    /// Marks a tenant whose space is gone `failed`, with the finding as its failure.
    async fn mark_data_loss(&self, t: &Tenant, detail: &str) -> Result<()> {
        let cause = Cause {
            trigger: "reconcile".into(),
            actor: TENANT_RECONCILER.into(),
            details: json!({ "drift": DriftKind::DatabaseMissing.as_str(), "detail": detail }),
        };
        let update = TenantUpdate {
            failure: Some(Some(Failure {
                operation: Uuid::nil(),
                step: "reconcile".into(),
                error: format!(
                    "data loss: {detail}; restore it from a backup, or delete the tenant"
                ),
            })),
            ..TenantUpdate::default()
        };
        self.catalog
            .transition(t.id, TenantState::Failed, cause, Vec::new(), update, None)
            .await?;
        tracing::error!(tenant = %t.slug, "{detail}: data loss, the tenant is marked failed");
        // Its compute has nothing to serve: stopped, kept for when its data is restored.
        if let Err(e) = self.stop_compute(t).await {
            tracing::warn!(tenant = %t.slug, error = %e, "stopping the compute of a tenant that lost its data failed");
        }
        Ok(())
    }

    /// `DriftDetected` for every finding, and `DriftRepaired` for what was repaired.
    async fn publish_drift(&self, drift: &TenantDrift) -> Result<()> {
        let payload = json!({
            "tenant_id": drift.tenant.id,
            "slug": drift.tenant.slug,
            "kind": drift.kind.as_str(),
            "detail": drift.detail,
            "repair": drift.repair,
            "data_loss": drift.kind == DriftKind::DatabaseMissing,
        });
        let mut events = vec![NewEvent {
            event_type: EventType::DriftDetected,
            payload: payload.clone(),
        }];
        if drift.outcome == Outcome::Repaired {
            events.push(NewEvent {
                event_type: EventType::DriftRepaired,
                payload,
            });
        }
        self.catalog.append_events(drift.tenant.id, events).await?;
        Ok(())
    }
}

fn or_none(version: Option<i64>) -> String {
    version.map_or_else(|| "none".to_owned(), |v| v.to_string())
}
