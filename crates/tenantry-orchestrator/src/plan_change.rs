//! Plan changes: `tenantry tenant update SLUG --plan P`. Placement runs again for the new plan,
//! and the tenant's declared state changes with it:
//!
//! - a different isolation is a live move (the ordinary move operation, with its rollback
//!   window); the new plan is recorded and its licence reissued at once, and the reconciler
//!   reissues it again once the move has switched the tenant's place;
//! - anything else (compute, quota, the plan's name) is an `update` operation: record the plan,
//!   reissue the licence, then start or remove the tenant's own compute.

use crate::error::{OrchestratorError, Result, StepError};
use crate::service::Orchestrator;
use serde_json::json;
use tenantry_catalog::model::{
    NewOperation, Operation, OperationKind, PlanChange, Tenant, TenantUpdate,
};
use tenantry_core::placement::{self, Placement};
use tenantry_core::{Compute, TenantState};
use uuid::Uuid;

/// The steps of an update.
pub const UPDATE_STEPS: &[&str] = &["apply_plan", "licence", "apply_compute"];

/// What a plan change started.
#[derive(Debug)]
pub enum PlanChangeStarted {
    /// The plan is the tenant's already.
    Unchanged,
    /// An update operation.
    Update(Operation),
    /// A live move to the new plan's isolation (the plan is recorded).
    Move(Operation),
}

impl Orchestrator {
    /// Placement for `t` under `plan`.
    fn placement_under(&self, t: &Tenant, plan: &str) -> Result<(Placement, PlanChange)> {
        let mut characteristics = t.characteristics.clone();
        characteristics.plan = plan.to_owned();
        let shared = self.config.shared_shard(&t.region).ok_or_else(|| {
            OrchestratorError::InvalidRequest(format!("region {:?} has no shard", t.region))
        })?;
        // An operator's --isolation at provisioning stays the operator's choice.
        let operator = (t.placement.rule == "operator-override").then_some(t.isolation);
        let placement = placement::decide(
            self.config.policy(),
            &t.slug,
            &characteristics,
            operator,
            shared.engine.supports_schemas(),
        )?;
        Ok((
            placement.clone(),
            PlanChange {
                plan: plan.to_owned(),
                placement,
                characteristics,
            },
        ))
    }

    /// Changes the tenant's plan (see the module's documentation).
    pub async fn request_plan_change(
        &self,
        slug: &str,
        plan: &str,
        actor: &str,
    ) -> Result<(Tenant, PlanChangeStarted)> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        if tenant.state != TenantState::Active {
            return Err(OrchestratorError::InvalidRequest(format!(
                "tenant {slug} is {}: only an active tenant changes plan",
                tenant.state
            )));
        }
        if self.config.plan(plan).is_none() {
            return Err(OrchestratorError::InvalidRequest(format!(
                "no plan {plan:?}: the configuration has {}",
                self.config
                    .plans
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (placement, change) = self.placement_under(&tenant, plan)?;
        if placement.isolation != tenant.isolation {
            let (_, op) = self
                .request_move(slug, placement.isolation, None, actor)
                .await?;
            let tenant = self
                .catalog
                .update_tenant(
                    tenant.id,
                    TenantUpdate {
                        plan: Some(change),
                        ..TenantUpdate::default()
                    },
                )
                .await?;
            // The plan's terms hold now; the isolation follows when the move switches.
            self.issue_licence(&tenant).await?;
            return Ok((tenant, PlanChangeStarted::Move(op)));
        }
        let quota = |p: &str| self.config.plan(p).map(|p| p.storage_quota_mb);
        if tenant.plan == plan
            && tenant.compute == placement.compute
            && quota(&tenant.plan) == quota(plan)
        {
            return Ok((tenant, PlanChangeStarted::Unchanged));
        }
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind: OperationKind::Update,
            steps: UPDATE_STEPS.to_vec(),
            params: json!({ "requested_by": actor, "plan": plan }),
        };
        let op = self.catalog.create_operation(tenant.id, op).await?;
        Ok((tenant, PlanChangeStarted::Update(op)))
    }

    /// Runs a step of an update.
    pub(crate) async fn run_update_step(
        &self,
        op: &Operation,
        name: &str,
        t: &Tenant,
    ) -> Result<(), StepError> {
        match name {
            "apply_plan" => {
                let plan = op.params["plan"]
                    .as_str()
                    .ok_or_else(|| StepError::permanent("the update names no plan"))?;
                let (_, change) = self.placement_under(t, plan)?;
                self.catalog
                    .update_tenant(
                        t.id,
                        TenantUpdate {
                            plan: Some(change),
                            ..TenantUpdate::default()
                        },
                    )
                    .await?;
            }
            "licence" => self.issue_licence(t).await?,
            "apply_compute" => match t.compute {
                Compute::Dedicated => {
                    self.ensure_compute(t).await?;
                }
                Compute::Shared => self.remove_compute(t).await?,
            },
            other => return Err(StepError::permanent(format!("unknown step {other:?}"))),
        }
        Ok(())
    }
}
