//! Fleet migrations: bring every selected tenant space to the application's latest migration,
//! with bounded parallelism and failures isolated per space.
//!
//! A shared database is one space for all its tenants, so it is migrated once and every tenant
//! in it gets the resulting version; every schema, database and SQLite file is its own space.
//! Migrations are recorded in each space, so running the command again resumes: spaces that
//! are up to date are left untouched, and a space that failed continues from its failed
//! migration once it is repaired.

use crate::error::Result;
use crate::service::Orchestrator;
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tenantry_catalog::model::{Tenant, TenantFilter, TenantUpdate};
use tenantry_core::space::Space;
use tenantry_core::{Isolation, TenantState};
use tracing::Instrument;

/// Which tenants a fleet migration covers; empty fields select all.
#[derive(Debug, Clone, Default)]
pub struct FleetSelection {
    pub slugs: Vec<String>,
    pub region: Option<String>,
    pub isolation: Option<Isolation>,
}

/// What happened to one space.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SpaceOutcome {
    /// Migrations were applied.
    Migrated { from: Option<i64>, to: Option<i64> },
    /// Nothing was pending.
    UpToDate { version: Option<i64> },
    /// Dry run: these would be applied.
    WouldApply { migrations: Vec<(i64, String)> },
    /// Migrating failed; the space keeps the migrations applied before the failure.
    Failed { error: String },
}

/// One space's result.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceResult {
    /// The tenant, or `shared:<shard>` for a shared database.
    pub label: String,
    pub isolation: Isolation,
    pub shard: String,
    /// The tenants whose data the space holds.
    pub tenants: Vec<String>,
    #[serde(flatten)]
    pub outcome: SpaceOutcome,
    pub took_ms: u64,
}

/// Told as each space finishes.
pub trait FleetProgress: Send + Sync {
    fn planned(&self, _spaces: usize) {}
    fn finished(&self, _result: &SpaceResult) {}
}

struct Target {
    label: String,
    space: Space,
    tenants: Vec<Tenant>,
}

fn targets(tenants: Vec<Tenant>) -> Vec<Target> {
    let mut shared: BTreeMap<String, Target> = BTreeMap::new();
    let mut out = Vec::new();
    for t in tenants {
        let Some(space) = t.space.clone() else {
            continue;
        };
        if space.kind == Isolation::Shared {
            let key = format!("{}:{:?}:{:?}", space.shard, space.path, space.database);
            shared
                .entry(key)
                .or_insert_with(|| Target {
                    label: format!("shared:{}", space.shard),
                    space,
                    tenants: Vec::new(),
                })
                .tenants
                .push(t);
        } else {
            out.push(Target {
                label: t.slug.clone(),
                space,
                tenants: vec![t],
            });
        }
    }
    let mut all: Vec<Target> = shared.into_values().collect();
    all.extend(out);
    all
}

impl Orchestrator {
    /// Migrates (or, with `dry_run`, lists what would migrate in) every selected space, at most
    /// `concurrency` at once. Failures are reported per space, never abort the others.
    pub async fn migrate_fleet(
        &self,
        selection: &FleetSelection,
        concurrency: usize,
        dry_run: bool,
        progress: &dyn FleetProgress,
    ) -> Result<Vec<SpaceResult>> {
        let mut tenants = self
            .catalog
            .tenants(&TenantFilter {
                region: selection.region.clone(),
                isolation: selection.isolation,
                ..TenantFilter::default()
            })
            .await?;
        tenants.retain(|t| matches!(t.state, TenantState::Active | TenantState::Suspended));
        if !selection.slugs.is_empty() {
            for slug in &selection.slugs {
                if !tenants.iter().any(|t| &t.slug == slug) {
                    // Surface unknown slugs as the catalog's own not-found error.
                    let t = self.catalog.tenant_by_slug(slug).await?;
                    return Err(crate::OrchestratorError::InvalidRequest(format!(
                        "tenant {} is {}, not active or suspended, or not in the selection",
                        t.slug, t.state
                    )));
                }
            }
            tenants.retain(|t| selection.slugs.contains(&t.slug));
        }
        let targets = targets(tenants);
        progress.planned(targets.len());
        let results = futures::stream::iter(targets)
            .map(|target| async move {
                let started = Instant::now();
                let outcome = self.migrate_target(&target, dry_run).await;
                let result = SpaceResult {
                    label: target.label,
                    isolation: target.space.kind,
                    shard: target.space.shard,
                    tenants: target.tenants.iter().map(|t| t.slug.clone()).collect(),
                    outcome,
                    took_ms: started.elapsed().as_millis().min(u64::MAX as u128) as u64,
                };
                progress.finished(&result);
                result
            })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(results)
    }

    async fn migrate_target(&self, target: &Target, dry_run: bool) -> SpaceOutcome {
        let driver = match self.spaces.driver(&target.space.shard) {
            Ok(d) => d,
            Err(e) => {
                return SpaceOutcome::Failed {
                    error: e.to_string(),
                };
            }
        };
        let pending = match driver.pending_migrations(&target.space).await {
            Ok(p) => p,
            Err(e) => {
                return SpaceOutcome::Failed {
                    error: e.to_string(),
                };
            }
        };
        let before = target.tenants.first().and_then(|t| t.schema_version);
        if dry_run {
            return SpaceOutcome::WouldApply {
                migrations: pending,
            };
        }
        if pending.is_empty() {
            return SpaceOutcome::UpToDate { version: before };
        }
        let span = tracing::info_span!("migrate", space = %target.label);
        match driver.migrate(&target.space).instrument(span).await {
            Ok(version) => {
                for t in &target.tenants {
                    let update = TenantUpdate {
                        schema_version: Some(version),
                        ..TenantUpdate::default()
                    };
                    if let Err(e) = self.catalog.update_tenant(t.id, update).await {
                        return SpaceOutcome::Failed {
                            error: format!("migrated, but recording the version failed: {e}"),
                        };
                    }
                }
                tracing::info!(?version, "space migrated");
                SpaceOutcome::Migrated {
                    from: before,
                    to: version,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "space failed to migrate");
                SpaceOutcome::Failed {
                    error: e.to_string(),
                }
            }
        }
    }
}

/// Fleet progress nobody watches.
pub struct NoFleetProgress;
impl FleetProgress for NoFleetProgress {}
