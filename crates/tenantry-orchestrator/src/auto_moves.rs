//! Moves started without an operator (`[placement.auto_move]`): a tenant whose statistics are
//! past a growth threshold by the configured margin, and whose last move ended longer ago than
//! the cooldown, is moved to the isolation the thresholds advise. The margin keeps a tenant
//! that hovers at a threshold from being moved on a passing peak; the cooldown keeps an
//! operator's rollback (or cancel) standing. A move started here waits in its rollback window
//! for an operator's `--complete`, and the tenant is not moved again meanwhile.

use crate::error::{OrchestratorError, Result};
use crate::service::Orchestrator;
use crate::stats::usage;
use serde::Serialize;
use tenantry_catalog::CatalogError;
use tenantry_catalog::model::{OperationKind, OperationState, Tenant};
use tenantry_core::Isolation;
use tenantry_core::growth::{recommend, with_margin};
use uuid::Uuid;

/// Who starts the moves, in the audit trail.
pub const AUTO_MOVE_ACTOR: &str = "reconciler:auto-move";

/// What the reconciler did about one tenant past a threshold.
#[derive(Debug, Clone, Serialize)]
pub struct AutoMove {
    pub slug: String,
    pub to: Isolation,
    pub reason: String,
    /// The move's operation, when one was started.
    pub started: Option<Uuid>,
    /// Why none was, otherwise.
    pub skipped: Option<String>,
}

impl Orchestrator {
    /// Starts the moves `[placement.auto_move]` allows (none when it is not set) and returns
    /// what was decided for each tenant past a threshold; the moves are queued for a worker.
    /// With `refresh`, every tenant's statistics are collected first.
    pub async fn start_auto_moves(&self, refresh: bool) -> Result<Vec<AutoMove>> {
        let Some(auto) = self.config.placement.auto_move.clone() else {
            return Ok(Vec::new());
        };
        let raised = with_margin(&self.config.placement.growth, auto.margin);
        let mut out = Vec::new();
        for advice in self.placement_advice(refresh).await? {
            let slug = advice.tenant.slug.clone();
            let mut decision = AutoMove {
                slug: slug.clone(),
                to: advice.recommendation.to,
                reason: advice.recommendation.reason.clone(),
                started: None,
                skipped: None,
            };
            let past = recommend(
                &self.rules_for(&advice.tenant, &raised),
                advice.tenant.isolation,
                &usage(&advice.stats),
            );
            let skip = match past {
                None => Some(format!(
                    "not {:.0} % past the threshold yet",
                    auto.margin * 100.0
                )),
                Some(_) => {
                    self.cooling_down(&advice.tenant, auto.cooldown_secs)
                        .await?
                }
            };
            if let Some(reason) = skip {
                decision.skipped = Some(reason);
            } else if let Some(past) = past {
                decision.to = past.to;
                match self
                    .request_move(&slug, past.to, None, AUTO_MOVE_ACTOR)
                    .await
                {
                    Ok((_, op)) => {
                        tracing::info!(tenant = %slug, to = %past.to, reason = %past.reason, operation = %op.id, "auto-move started");
                        decision.started = Some(op.id);
                    }
                    // An isolation the region's engine lacks, a draining shard, another operation
                    // of the tenant under way: said, and tried again next time.
                    Err(
                        e @ (OrchestratorError::InvalidRequest(_)
                        | OrchestratorError::Catalog(CatalogError::OperationInProgress {
                            ..
                        })),
                    ) => decision.skipped = Some(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            out.push(decision);
        }
        Ok(out)
    }

    /// Why the tenant is not to be moved now, judged by its last move, if it is not.
    async fn cooling_down(&self, tenant: &Tenant, cooldown_secs: u64) -> Result<Option<String>> {
        let last = self.last_move(tenant).await?;
        let Some(last) = last else {
            return Ok(None);
        };
        if last.state.is_open() {
            return Ok(Some("a move of it is under way".into()));
        }
        if last.kind == OperationKind::Move && last.state == OperationState::Succeeded {
            return Ok(Some(format!(
                "its last move waits in its rollback window: `tenantry tenant move {} --complete` first",
                tenant.slug
            )));
        }
        let ended = last.finished_at.unwrap_or(last.updated_at);
        let since = (chrono::Utc::now() - ended).num_seconds().max(0) as u64;
        Ok((since < cooldown_secs).then(|| {
            format!("its last move ended {since} s ago; the cooldown is {cooldown_secs} s")
        }))
    }
}
