//! The seeds' infrastructure service on the one orchestrator: a tenant's infrastructure is
//! provisioned, updated and deprovisioned by ordinary durable operations whose steps are the
//! seeds' phases — Request, Plan, Apply, Deploy, Configure, Verify, Complete — with Terraform as
//! the engine of Plan and Apply. Each phase is idempotent like every other step, failpoints work
//! on it, and a failure rolls back through the same runner (a provision that failed to apply
//! destroys what it created); the tenant's infrastructure record ends `FAILED` with the error,
//! and every status change is an `InfrastructureStateTransition` row.
//!
//! - **request** records what was asked for (status `PROVISIONING`, `UPDATING` or
//!   `DEPROVISIONING`).
//! - **plan** renders the tenant's root module around its tier's module and saves a plan whose
//!   summary (resources to add, change, destroy) is on the record before anything is applied;
//!   deprovisioning plans the destruction.
//! - **apply** applies exactly the saved plan (deprovisioning destroys and removes the state).
//! - **deploy** hands Terraform's outputs to the tenant: they are recorded on its entity.
//! - **configure** writes the tenant's infrastructure document (`infrastructure.json`: namespace,
//!   configuration, outputs) into its storage prefix, where its services read their endpoints.
//! - **verify** checks the state file exists at the state key, that a fresh plan finds nothing
//!   to change, and that the document is in place.
//! - **complete** marks the infrastructure `ACTIVE` (or `DEPROVISIONED`).

use crate::error::{OrchestratorError, Result, StepError};
use crate::service::Orchestrator;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tenantry_catalog::model::{
    InfraStatus, Infrastructure, NewEvent, NewInfraTransition, NewOperation, Operation,
    OperationKind, Tenant, TenantFilter,
};
use tenantry_core::events::EventType;
use tenantry_core::{TenantId, TenantState};
use tenantry_infra::terraform::{PlanSummary, Terraform, TerraformConfig};
use uuid::Uuid;

/// The phases of provisioning and updating, in order.
pub const INFRA_PHASES: &[&str] = &[
    "request",
    "plan",
    "apply",
    "deploy",
    "configure",
    "verify",
    "complete",
];

/// The phases of deprovisioning: plan the destruction, destroy, and close the record.
pub const INFRA_DEPROVISION_PHASES: &[&str] = &["request", "plan", "apply", "complete"];

/// The document a tenant's services read their infrastructure from, in its storage prefix.
pub const INFRA_DOCUMENT: &str = "infrastructure.json";

/// The actor of the updates the reconciler queues to repair drift.
pub const RECONCILER: &str = "reconciler";

/// What one reconcile pass found for a tenant whose infrastructure is active.
#[derive(Debug, Clone, Serialize)]
pub struct DriftFinding {
    pub tenant_id: TenantId,
    pub slug: String,
    /// Whether a fresh plan found the infrastructure differing from its configuration.
    pub drifted: bool,
    /// The update queued to repair it (none on a dry run or when nothing drifted).
    pub repair: Option<Uuid>,
}

/// Cloud providers a request may name.
pub const CLOUD_PROVIDERS: &[&str] = &["AZURE", "AWS", "GCP", "LOCAL"];

/// What a provision or update asks for (the seeds' request body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraRequest {
    pub tier: String,
    pub region: String,
    pub cloud_provider: String,
    /// `databaseSize`, `storageGb`, `enableHa`, and whatever further keys the tier's module
    /// declares as variables (in snake case).
    pub configuration: Value,
}

impl InfraRequest {
    /// What the tenant's infrastructure was last asked to be.
    fn recorded(record: &Infrastructure) -> Self {
        Self {
            tier: record.tier.clone(),
            region: record.region.clone(),
            cloud_provider: record.cloud_provider.clone(),
            configuration: record.configuration.clone(),
        }
    }
}

/// `storageGb` → `storage_gb`: request keys as Terraform variable names.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The variable and output names a module declares in its `*.tf.json` files.
fn module_interface(module: &Path) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let (mut variables, mut outputs) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(module)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with(".tf.json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        for (block, names) in [("variable", &mut variables), ("output", &mut outputs)] {
            if let Some(map) = doc[block].as_object() {
                names.extend(map.keys().cloned());
            }
        }
    }
    variables.sort();
    outputs.sort();
    Ok((variables, outputs))
}

impl Orchestrator {
    /// The Terraform driver, started on first use (so that commands that never touch
    /// infrastructure do not need the binary), or an error that says how to configure it.
    pub(crate) async fn terraform(&self) -> Result<&Terraform> {
        let config = self.config.infrastructure.as_ref().ok_or_else(|| {
            OrchestratorError::InvalidRequest(
                "infrastructure is not configured: add an [infrastructure] section (terraform, modules, work) to tenantry.toml; `tenantry init` writes one".into(),
            )
        })?;
        self.terraform
            .get_or_try_init(|| {
                Terraform::new(TerraformConfig {
                    binary: config.terraform.clone(),
                    workspaces: config.work.clone(),
                    state_root: config.work.clone(),
                    plugin_cache: config.work.join("plugins"),
                    parallelism: config.parallelism,
                    backend: config
                        .backend
                        .as_ref()
                        .map(|b| (b.kind.clone(), b.settings.clone())),
                })
            })
            .await
            .map_err(|e| OrchestratorError::InvalidRequest(e.to_string()))
    }

    /// The tenant with this id, or else this slug (the infrastructure API takes either).
    pub async fn tenant_by_ref(&self, tenant_ref: &str) -> Result<Tenant> {
        Ok(match tenant_ref.parse::<TenantId>() {
            Ok(id) => self.catalog.tenant(id).await?,
            Err(_) => self.catalog.tenant_by_slug(tenant_ref).await?,
        })
    }

    /// The module directory of `tier`: `<modules>/<tier>/`, else `<modules>/default/`.
    fn module_of(&self, tier: &str) -> Result<PathBuf> {
        // The tier names a directory: nothing that could climb out of the modules directory.
        let well_formed = !tier.is_empty()
            && tier.len() <= 63
            && tier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(OrchestratorError::InvalidRequest(format!(
                "tier {tier:?} is not a tier name: use 1 to 63 letters, digits, '-' or '_'"
            )));
        }
        let modules = &self
            .config
            .infrastructure
            .as_ref()
            .expect("checked by terraform()")
            .modules;
        [modules.join(tier), modules.join("default")]
            .into_iter()
            .find(|dir| dir.is_dir())
            .ok_or_else(|| {
                OrchestratorError::InvalidRequest(format!(
                    "no Terraform module for tier {tier:?}: create {} (or {})",
                    modules.join(tier).display(),
                    modules.join("default").display()
                ))
            })
    }

    /// Queues an infrastructure operation for the tenant with this id or slug, refusing at once
    /// what cannot run: an unknown or deleted tenant, a region other than the tenant's, an
    /// unknown cloud provider, a tier without a module, a provision of infrastructure that
    /// exists, an update or deprovision of infrastructure that does not.
    pub async fn request_infrastructure(
        &self,
        tenant_ref: &str,
        kind: OperationKind,
        request: Option<InfraRequest>,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let (tenant, request, steps) = self.check_infrastructure(tenant_ref, kind, request).await?;
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind,
            steps: steps.to_vec(),
            params: json!({ "requested_by": actor, "request": request }),
        };
        let op = self.catalog.create_operation(tenant.id, op).await?;
        Ok((tenant, op))
    }

    /// The plan an infrastructure operation's plan phase made, while it is the tenant's last
    /// (a later operation's plan replaces it on the record); `None` for other operations.
    pub async fn operation_plan(&self, op: &Operation) -> Result<Option<Value>> {
        if !op.kind.is_infrastructure() {
            return Ok(None);
        }
        let plan = self
            .catalog
            .infrastructure(op.tenant_id)
            .await?
            .and_then(|record| record.plan);
        Ok(plan.filter(|p| p["operation"] == json!(op.id)))
    }

    /// A dry run of a provision or update: the plan's summary (resources to add, change and
    /// destroy) against the tenant's current state, with nothing recorded, queued or applied.
    pub async fn preview_infrastructure(
        &self,
        tenant_ref: &str,
        kind: OperationKind,
        request: InfraRequest,
    ) -> Result<Value> {
        let (tenant, request, _) = self
            .check_infrastructure(tenant_ref, kind, Some(request))
            .await?;
        let namespace = namespace_of(&tenant);
        let (module, variables, outputs) = self.root_inputs(&tenant, &request, &namespace)?;
        let log = |line: &str| tracing::info!(terraform = line);
        let summary = self
            .terraform()
            .await?
            .preview(tenant.id, &module, &variables, &outputs, &log)
            .await
            .map_err(|e| OrchestratorError::InvalidRequest(e.to_string()))?;
        Ok(plan_json(&summary))
    }

    /// The tier's module, the variables it declares filled from the tenant and the request, and
    /// the outputs it declares.
    fn root_inputs(
        &self,
        tenant: &Tenant,
        request: &InfraRequest,
        namespace: &str,
    ) -> Result<(PathBuf, Value, Vec<String>)> {
        let module = self.module_of(&request.tier)?;
        let (declared, outputs) = module_interface(&module).map_err(|e| {
            OrchestratorError::InvalidRequest(format!("reading module {}: {e}", module.display()))
        })?;
        let mut available = serde_json::Map::new();
        available.insert("tenant_id".into(), tenant.id.to_string().into());
        available.insert("tenant_slug".into(), tenant.slug.clone().into());
        available.insert("region".into(), request.region.clone().into());
        available.insert(
            "cloud_provider".into(),
            request.cloud_provider.clone().into(),
        );
        available.insert("tier".into(), request.tier.clone().into());
        available.insert("namespace".into(), namespace.into());
        if let Some(config) = request.configuration.as_object() {
            for (k, v) in config {
                available.insert(snake_case(k), v.clone());
            }
        }
        available.retain(|k, _| declared.contains(k));
        Ok((module, Value::Object(available), outputs))
    }

    /// Checks an infrastructure request against the tenant and the configuration; returns the
    /// tenant, the request to run and the operation's steps.
    async fn check_infrastructure(
        &self,
        tenant_ref: &str,
        kind: OperationKind,
        request: Option<InfraRequest>,
    ) -> Result<(Tenant, InfraRequest, &'static [&'static str])> {
        self.terraform().await?;
        let tenant = self.tenant_by_ref(tenant_ref).await?;
        if matches!(tenant.state, TenantState::Deleting | TenantState::Deleted) {
            return Err(OrchestratorError::InvalidRequest(format!(
                "tenant {} is {}; it can have no infrastructure",
                tenant.slug, tenant.state
            )));
        }
        let existing = self.catalog.infrastructure(tenant.id).await?;
        let live = existing
            .as_ref()
            .is_some_and(|i| i.status != InfraStatus::Deprovisioned);
        let steps = match kind {
            OperationKind::InfraProvision if live => {
                return Err(OrchestratorError::InvalidRequest(format!(
                    "tenant {} already has infrastructure; change it with PUT",
                    tenant.slug
                )));
            }
            OperationKind::InfraUpdate | OperationKind::InfraDeprovision if !live => {
                return Err(OrchestratorError::InvalidRequest(format!(
                    "tenant {} has no infrastructure; provision it first",
                    tenant.slug
                )));
            }
            OperationKind::InfraProvision | OperationKind::InfraUpdate => INFRA_PHASES,
            OperationKind::InfraDeprovision => INFRA_DEPROVISION_PHASES,
            other => {
                return Err(OrchestratorError::InvalidRequest(format!(
                    "{other} is not an infrastructure operation"
                )));
            }
        };
        let request = match (request, &existing) {
            (Some(r), _) => r,
            (None, Some(i)) => InfraRequest::recorded(i),
            (None, None) => {
                return Err(OrchestratorError::InvalidRequest(
                    "an infrastructure request needs tier, region, cloudProvider and configuration"
                        .into(),
                ));
            }
        };
        if request.region != tenant.region {
            return Err(OrchestratorError::InvalidRequest(format!(
                "region {:?} is not tenant {}'s region ({}): a tenant's infrastructure stays in its region",
                request.region, tenant.slug, tenant.region
            )));
        }
        if !CLOUD_PROVIDERS.contains(&request.cloud_provider.as_str()) {
            return Err(OrchestratorError::InvalidRequest(format!(
                "unknown cloudProvider {:?}; use one of {}",
                request.cloud_provider,
                CLOUD_PROVIDERS.join(", ")
            )));
        }
        if !request.configuration.is_object() {
            return Err(OrchestratorError::InvalidRequest(
                "configuration must be an object (databaseSize, storageGb, enableHa, …)".into(),
            ));
        }
        self.module_of(&request.tier)?;
        Ok((tenant, request, steps))
    }

    fn request_of(op: &Operation) -> Result<InfraRequest, StepError> {
        serde_json::from_value(op.params["request"].clone())
            .map_err(|e| StepError::permanent(format!("operation parameters: {e}")))
    }

    /// The tenant's record, which every phase after `request` needs.
    async fn record_of(&self, tenant: TenantId) -> Result<Infrastructure, StepError> {
        self.catalog
            .infrastructure(tenant)
            .await?
            .ok_or_else(|| StepError::permanent("the infrastructure record is missing"))
    }

    /// Moves the record to `to`, recording the transition and `events` (once: a phase run
    /// again after a crash finds the record already there and writes nothing new).
    async fn set_infra_status(
        &self,
        mut record: Infrastructure,
        to: InfraStatus,
        op: &Operation,
        trigger: &str,
        details: Value,
        events: &[EventType],
    ) -> Result<(), StepError> {
        if record.status == to {
            return Ok(());
        }
        let details = json!({ "operation": op.id, "kind": op.kind, "details": details });
        let transition = NewInfraTransition {
            from: Some(record.status),
            to,
            trigger: trigger.to_owned(),
            details: details.clone(),
        };
        let events = events
            .iter()
            .map(|&event_type| NewEvent {
                event_type,
                payload: json!({ "tenant_id": record.tenant_id, "status": to, "namespace": record.namespace, "outputs": record.outputs, "operation_id": op.id, "details": details }),
            })
            .collect();
        record.status = to;
        if to != InfraStatus::Failed {
            record.error = None;
        }
        self.catalog
            .save_infrastructure(&record, Some(transition), events)
            .await?;
        Ok(())
    }

    /// Runs one phase of an infrastructure operation.
    pub(crate) async fn run_infra_step(
        &self,
        op: &Operation,
        name: &str,
        tenant: &Tenant,
    ) -> Result<(), StepError> {
        let tf = self.terraform().await?;
        let request = Self::request_of(op)?;
        let log = |line: &str| tracing::info!(terraform = line);
        let destroying = op.kind == OperationKind::InfraDeprovision;
        match name {
            "request" => {
                let existing = self.catalog.infrastructure(tenant.id).await?;
                let to = match op.kind {
                    OperationKind::InfraProvision => InfraStatus::Provisioning,
                    OperationKind::InfraUpdate => InfraStatus::Updating,
                    _ => InfraStatus::Deprovisioning,
                };
                if existing.as_ref().is_some_and(|e| e.status == to) {
                    return Ok(());
                }
                let now = chrono::Utc::now();
                let record = Infrastructure {
                    id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
                    tenant_id: tenant.id,
                    status: to,
                    tier: request.tier.clone(),
                    cloud_provider: request.cloud_provider.clone(),
                    region: request.region.clone(),
                    namespace: namespace_of(tenant),
                    configuration: request.configuration.clone(),
                    state_key: Terraform::state_key(tenant.id),
                    plan: existing.as_ref().and_then(|e| e.plan.clone()),
                    outputs: existing.as_ref().and_then(|e| e.outputs.clone()),
                    error: None,
                    created_at: existing.as_ref().map_or(now, |e| e.created_at),
                    updated_at: now,
                };
                let transition = NewInfraTransition {
                    from: existing.map(|e| e.status),
                    to,
                    trigger: format!("{} requested", op.kind),
                    details: json!({ "operation": op.id, "request": request, "requested_by": op.params["requested_by"] }),
                };
                self.catalog
                    .save_infrastructure(&record, Some(transition), vec![])
                    .await?;
            }
            "plan" => {
                let mut record = self.record_of(tenant.id).await?;
                let recorded = InfraRequest::recorded(&record);
                let (module, variables, outputs) =
                    self.root_inputs(tenant, &recorded, &record.namespace)?;
                tf.render(tenant.id, &module, &variables, &outputs)?;
                let summary = tf.plan(tenant.id, destroying, &log).await?;
                tracing::info!(
                    add = summary.add,
                    change = summary.change,
                    destroy = summary.destroy,
                    "planned"
                );
                let mut plan = plan_json(&summary);
                plan["operation"] = json!(op.id);
                record.plan = Some(plan);
                self.catalog
                    .save_infrastructure(&record, None, vec![])
                    .await?;
            }
            "apply" if destroying => tf.destroy(tenant.id, &log).await?,
            "apply" => {
                // Run again after a crash that followed a successful apply, the saved plan is
                // stale; a fresh plan that finds nothing to change says it was applied.
                if tf.has_state(tenant.id).await? && !tf.drifted(tenant.id, &log).await? {
                    return Ok(());
                }
                let plan = PlanSummary {
                    plan_file: tf.plan_file(tenant.id),
                    ..PlanSummary::default()
                };
                if let Err(e) = tf.apply(tenant.id, &plan, &log).await {
                    // A failed step is not undone by the runner (only completed ones are), so a
                    // provision destroys what its partial apply made before it reports.
                    if op.kind == OperationKind::InfraProvision
                        && let Err(cleanup) = tf.destroy(tenant.id, &log).await
                    {
                        tracing::warn!(error = %cleanup, "destroying a partial apply failed too");
                    }
                    return Err(e.into());
                }
            }
            "deploy" => {
                let mut record = self.record_of(tenant.id).await?;
                record.outputs = Some(tf.outputs(tenant.id).await?);
                self.catalog
                    .save_infrastructure(&record, None, vec![])
                    .await?;
            }
            "configure" => {
                let record = self.record_of(tenant.id).await?;
                let document = json!({
                    "tenant_id": tenant.id,
                    "namespace": record.namespace,
                    "cloud_provider": record.cloud_provider,
                    "tier": record.tier,
                    "configuration": record.configuration,
                    "outputs": record.outputs,
                });
                self.storage
                    .put_document(&tenant.region, tenant.id, INFRA_DOCUMENT, &document)
                    .await?;
            }
            "verify" => {
                let mut problems = Vec::new();
                if !tf.has_state(tenant.id).await? {
                    problems.push(format!("no state at {}", Terraform::state_key(tenant.id)));
                } else if tf.drifted(tenant.id, &log).await? {
                    problems.push("a fresh plan still finds changes to make".to_owned());
                }
                if self
                    .storage
                    .document(&tenant.region, tenant.id, INFRA_DOCUMENT)
                    .await?
                    .is_none()
                {
                    problems.push(format!("{INFRA_DOCUMENT} is missing from its storage"));
                }
                if !problems.is_empty() {
                    return Err(StepError::permanent(format!(
                        "tenant {}'s infrastructure failed verification: {}",
                        tenant.slug,
                        problems.join("; ")
                    )));
                }
            }
            "complete" => {
                let record = self.record_of(tenant.id).await?;
                let (to, trigger, events) = if destroying {
                    self.storage
                        .remove_document(&tenant.region, tenant.id, INFRA_DOCUMENT)
                        .await?;
                    (
                        InfraStatus::Deprovisioned,
                        "deprovisioned",
                        &[EventType::InfrastructureDeprovisioned][..],
                    )
                } else if op.params["requested_by"] == RECONCILER {
                    (
                        InfraStatus::Active,
                        "drift repaired",
                        &[EventType::InfrastructureReady, EventType::DriftRepaired][..],
                    )
                } else {
                    (
                        InfraStatus::Active,
                        "ready",
                        &[EventType::InfrastructureReady][..],
                    )
                };
                self.set_infra_status(record, to, op, trigger, Value::Null, events)
                    .await?;
            }
            other => return Err(StepError::permanent(format!("unknown step {other:?}"))),
        }
        Ok(())
    }

    /// Undoes a phase of a failed infrastructure operation: a provision destroys what it
    /// applied and removes the document it wrote. An update is not undone (its previous
    /// configuration may no longer be what anyone wants); it ends `FAILED` with the error.
    pub(crate) async fn undo_infra_step(
        &self,
        op: &Operation,
        name: &str,
    ) -> Result<(), StepError> {
        if op.kind != OperationKind::InfraProvision {
            return Ok(());
        }
        let tenant = self.catalog.tenant(op.tenant_id).await?;
        match name {
            "apply" => {
                let log = |line: &str| tracing::info!(terraform = line);
                self.terraform().await?.destroy(tenant.id, &log).await?;
            }
            "configure" => {
                self.storage
                    .remove_document(&tenant.region, tenant.id, INFRA_DOCUMENT)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// One reconcile pass over infrastructure: for every active tenant whose infrastructure is
    /// `ACTIVE`, a fresh plan against its recorded configuration; a difference is a
    /// `DriftDetected` event and (unless `dry_run`) an update queued on the reconciler's behalf,
    /// whose apply repairs it (`DriftRepaired`). Suspended tenants are left alone unless
    /// `infrastructure.reconcile_suspended` says otherwise. A tenant with an operation under
    /// way is skipped this pass.
    pub async fn reconcile_infrastructure(&self, dry_run: bool) -> Result<Vec<DriftFinding>> {
        let tf = self.terraform().await?;
        let suspended_too = self
            .config
            .infrastructure
            .as_ref()
            .is_some_and(|i| i.reconcile_suspended);
        let tenants = self
            .catalog
            .tenants(&TenantFilter::default())
            .await?
            .into_iter()
            .filter(|t| {
                t.state == TenantState::Active
                    || (suspended_too && t.state == TenantState::Suspended)
            });
        let log = |line: &str| tracing::debug!(terraform = line);
        let mut findings = Vec::new();
        for tenant in tenants {
            let Some(record) = self.catalog.infrastructure(tenant.id).await? else {
                continue;
            };
            if record.status != InfraStatus::Active {
                continue;
            }
            let recorded = InfraRequest::recorded(&record);
            let (module, variables, outputs) =
                self.root_inputs(&tenant, &recorded, &record.namespace)?;
            let summary = tf
                .preview(tenant.id, &module, &variables, &outputs, &log)
                .await
                .map_err(|e| OrchestratorError::InvalidRequest(e.to_string()))?;
            let drifted = !summary.is_empty();
            let mut finding = DriftFinding {
                tenant_id: tenant.id,
                slug: tenant.slug.clone(),
                drifted,
                repair: None,
            };
            if drifted && !dry_run {
                match self
                    .request_infrastructure(
                        &tenant.id.to_string(),
                        OperationKind::InfraUpdate,
                        None,
                        RECONCILER,
                    )
                    .await
                {
                    Ok((_, op)) => {
                        let event = NewEvent {
                            event_type: EventType::DriftDetected,
                            payload: json!({ "tenant_id": tenant.id, "plan": plan_json(&summary), "repair": op.id }),
                        };
                        self.catalog
                            .save_infrastructure(&record, None, vec![event])
                            .await?;
                        tracing::warn!(tenant = %tenant.slug, operation = %op.id, "infrastructure drifted; repair queued");
                        finding.repair = Some(op.id);
                    }
                    Err(OrchestratorError::Catalog(
                        tenantry_catalog::CatalogError::OperationInProgress { .. },
                    )) => {
                        tracing::info!(tenant = %tenant.slug, "an operation is under way; drift is looked at next pass");
                    }
                    Err(e) => return Err(e),
                }
            }
            findings.push(finding);
        }
        Ok(findings)
    }

    /// Records a rolled-back infrastructure operation: the record ends `FAILED` with the step
    /// and the error (a provision whose apply failed was destroyed first, by its undo).
    pub(crate) async fn fail_infrastructure(
        &self,
        op: &Operation,
        step: &str,
        error: &str,
    ) -> Result<()> {
        if let Some(mut record) = self.catalog.infrastructure(op.tenant_id).await? {
            record.error = Some(format!("{step}: {error}"));
            self.set_infra_status(
                record,
                InfraStatus::Failed,
                op,
                "rolled back",
                json!({ "step": step, "error": error }),
                &[EventType::InfrastructureFailed],
            )
            .await
            .map_err(|e| OrchestratorError::InvalidRequest(e.message))?;
        }
        Ok(())
    }
}

/// The tenant's namespace: `tenant-<slug>`.
fn namespace_of(tenant: &Tenant) -> String {
    format!("tenant-{}", tenant.slug)
}

/// A plan's summary as stored on the record and served by the API.
fn plan_json(summary: &PlanSummary) -> Value {
    json!({
        "add": summary.add,
        "change": summary.change,
        "destroy": summary.destroy,
        "resources": summary
            .resources
            .iter()
            .map(|(address, action)| json!({ "address": address, "action": action }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_become_variable_names() {
        assert_eq!(snake_case("storageGb"), "storage_gb");
        assert_eq!(snake_case("enableHa"), "enable_ha");
        assert_eq!(snake_case("databaseSize"), "database_size");
        assert_eq!(snake_case("replicas"), "replicas");
    }
}
