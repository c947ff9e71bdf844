//! The steps of each operation kind: what each does and how it is undone.
//!
//! Every step is idempotent — it reads the catalog afresh and does only what is missing — so
//! that a worker resuming after a crash can run it again. Steps whose effect is a state change
//! write their checkpoint in the same catalog transaction as the change (and its events), so
//! that the change and its events happen exactly once.

use crate::error::StepError;
use crate::service::Orchestrator;
use crate::shards::DATABASE_SECRET;
use serde_json::{Value, json};
use tenantry_catalog::model::{
    Checkpoint, NewEvent, Operation, OperationKind, PoolAdoption, Tenant, TenantUpdate,
};
use tenantry_core::events::EventType;
use tenantry_core::{Engine, Isolation, Slug, TenantState};
use tenantry_engines::SpaceError;
use tenantry_engines::driver::Credentials;

/// Provisioning, in the order the steps run.
pub const PROVISION_STEPS: &[&str] = &[
    "validate",
    "place",
    "create_space",
    "migrate",
    "seed",
    "bootstrap_admin",
    "storage",
    "licence",
    "compute",
    "verify",
    "activate",
];
const SUSPEND_STEPS: &[&str] = &["suspend", "stop_compute"];
const RESUME_STEPS: &[&str] = &["start_compute", "resume"];
const DELETE_STEPS: &[&str] = &[
    "begin_delete",
    "remove_compute",
    "drop_space",
    "remove_storage",
    "finish_delete",
];

/// The steps of an operation kind, in order.
pub fn steps_of(kind: OperationKind) -> &'static [&'static str] {
    match kind {
        OperationKind::Provision => PROVISION_STEPS,
        OperationKind::Suspend => SUSPEND_STEPS,
        OperationKind::Resume => RESUME_STEPS,
        OperationKind::Delete => DELETE_STEPS,
        OperationKind::InfraProvision | OperationKind::InfraUpdate => {
            crate::infrastructure::INFRA_PHASES
        }
        OperationKind::InfraDeprovision => crate::infrastructure::INFRA_DEPROVISION_PHASES,
        OperationKind::Move => crate::moves::MOVE_STEPS,
        OperationKind::MoveComplete => crate::moves::MOVE_COMPLETE_STEPS,
        OperationKind::MoveRollback => crate::moves::MOVE_ROLLBACK_STEPS,
        OperationKind::Update => crate::plan_change::UPDATE_STEPS,
    }
}

/// The event payload describing a tenant.
pub(crate) fn payload(t: &Tenant, op: &Operation) -> Value {
    json!({
        "tenant_id": t.id,
        "slug": t.slug,
        "plan": t.plan,
        "region": t.region,
        "isolation": t.isolation,
        "shard": t.shard,
        "operation_id": op.id,
    })
}

fn event(event_type: EventType, t: &Tenant, op: &Operation) -> NewEvent {
    NewEvent {
        event_type,
        payload: payload(t, op),
    }
}

impl Orchestrator {
    /// Moves the tenant `t` to `to` with `events`, checkpointing step `idx` in the same
    /// transaction.
    async fn step_transition(
        &self,
        op: &Operation,
        t: &Tenant,
        idx: i64,
        to: TenantState,
        events: &[EventType],
        update: TenantUpdate,
    ) -> Result<(), StepError> {
        let name = op
            .steps
            .iter()
            .find(|s| s.idx == idx)
            .map_or("", |s| s.name.as_str());
        let events = events.iter().map(|e| event(*e, t, op)).collect();
        let cause = tenantry_catalog::model::Cause {
            details: json!({ "operation": op.id, "kind": op.kind, "step": name }),
            ..self.cause_of(op, format!("{} {}", op.kind, name))
        };
        let checkpoint = Checkpoint {
            operation: op.id,
            step: idx,
        };
        self.catalog
            .transition(t.id, to, cause, events, update, Some(checkpoint))
            .await?;
        Ok(())
    }

    /// Runs step `name` (number `idx`) of `op`, whose tenant `t` was read as the step started.
    /// Returns whether the step wrote its own checkpoint (state-changing steps do).
    pub(crate) async fn run_step(
        &self,
        op: &Operation,
        idx: i64,
        name: &str,
        t: Tenant,
        progress: &dyn crate::runner::Progress,
    ) -> Result<bool, StepError> {
        if op.kind.is_infrastructure() {
            self.run_infra_step(op, name, &t).await?;
            return Ok(false);
        }
        if matches!(
            op.kind,
            OperationKind::Move | OperationKind::MoveComplete | OperationKind::MoveRollback
        ) {
            return self.run_move_step(op, idx, name, progress).await;
        }
        if op.kind == OperationKind::Update {
            self.run_update_step(op, name, &t).await?;
            return Ok(false);
        }
        match name {
            "validate" => {
                if self.config.plan(&t.plan).is_none() {
                    return Err(StepError::permanent(format!(
                        "plan {:?} is no longer in the configuration",
                        t.plan
                    )));
                }
                self.spaces.driver(&t.shard)?;
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Validating,
                    &[],
                    TenantUpdate::default(),
                )
                .await?;
                return Ok(true);
            }
            "place" => {
                let space = self.spaces.driver(&t.shard)?.locate(t.id, t.isolation)?;
                let update = TenantUpdate {
                    space: Some(Some(space)),
                    ..TenantUpdate::default()
                };
                self.step_transition(op, &t, idx, TenantState::Provisioning, &[], update)
                    .await?;
                return Ok(true);
            }
            "create_space" => self.create_space(&t).await?,
            "migrate" => {
                let space = space_of(&t)?;
                let driver = self.spaces.driver(&space.shard)?;
                // A database adopted from the warm pool comes migrated, its version recorded
                // with the adoption: nothing to do (`verify` reads the space's own ledger).
                if t.schema_version.is_some()
                    && t.schema_version == self.app.latest_version(driver.engine()).await?
                {
                    return Ok(false);
                }
                self.migrate_space(&t, space).await?;
            }
            "seed" => {
                let space = space_of(&t)?;
                let slug = Slug::parse(&t.slug).map_err(|e| StepError::permanent(e.to_string()))?;
                self.spaces
                    .driver(&space.shard)?
                    .seed(space, t.id, &slug)
                    .await?;
            }
            "bootstrap_admin" => {
                let space = space_of(&t)?;
                self.spaces
                    .driver(&space.shard)?
                    .bootstrap_admin(space, t.id, &t.admin_email)
                    .await?;
            }
            "storage" => self.storage.ensure(&t.region, t.id, &t.slug).await?,
            "licence" => self.issue_licence(&t).await?,
            // Health-checked here, before the tenant turns active.
            "compute" | "start_compute" => {
                self.ensure_compute(&t).await?;
            }
            "stop_compute" => self.stop_compute(&t).await?,
            "remove_compute" => self.remove_compute(&t).await?,
            "verify" => self.verify(&t).await?,
            "activate" => {
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Active,
                    &[EventType::TenantProvisioned, EventType::TenantActivated],
                    TenantUpdate::default(),
                )
                .await?;
                return Ok(true);
            }
            "suspend" => {
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Suspended,
                    &[EventType::TenantSuspended],
                    TenantUpdate::default(),
                )
                .await?;
                return Ok(true);
            }
            "resume" => {
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Active,
                    &[EventType::TenantResumed],
                    TenantUpdate::default(),
                )
                .await?;
                return Ok(true);
            }
            "begin_delete" => {
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Deleting,
                    &[],
                    TenantUpdate::default(),
                )
                .await?;
                return Ok(true);
            }
            "drop_space" => self.remove_space(&t).await?,
            "remove_storage" => {
                self.storage.remove(&t.region, t.id).await?;
            }
            "finish_delete" => {
                let update = TenantUpdate {
                    failure: Some(None),
                    ..TenantUpdate::default()
                };
                self.step_transition(
                    op,
                    &t,
                    idx,
                    TenantState::Deleted,
                    &[EventType::TenantDeleted],
                    update,
                )
                .await?;
                return Ok(true);
            }
            other => {
                return Err(StepError::permanent(format!("unknown step {other:?}")));
            }
        }
        Ok(false)
    }

    /// Undoes step `name` of a failed operation. Steps without an effect outside the catalog
    /// (or whose effect a later undo covers) have nothing to undo.
    pub(crate) async fn undo_step(&self, op: &Operation, name: &str) -> Result<(), StepError> {
        if op.kind.is_infrastructure() {
            return self.undo_infra_step(op, name).await;
        }
        if op.kind == OperationKind::Move {
            return self.undo_move_step(op, name).await;
        }
        let t = self.catalog.tenant(op.tenant_id).await?;
        match (op.kind, name) {
            (OperationKind::Provision, "create_space") => {
                self.remove_space(&t).await?;
                self.catalog
                    .update_tenant(
                        t.id,
                        TenantUpdate {
                            schema_version: Some(None),
                            ..TenantUpdate::default()
                        },
                    )
                    .await?;
            }
            (OperationKind::Provision, "storage") => {
                self.storage.remove(&t.region, t.id).await?;
            }
            (OperationKind::Provision, "compute") => self.remove_compute(&t).await?,
            (OperationKind::Resume, "start_compute") => self.stop_compute(&t).await?,
            _ => {}
        }
        Ok(())
    }

    /// Creates the tenant's space — through the region's data plane when it has one, else from
    /// the warm pool when the shard has a database waiting — and keeps its own credentials,
    /// sealed. Idempotent: a claimed pool entry stays the
    /// tenant's until its adoption is recorded; once the tenant has credentials (its database
    /// was adopted or created), a second run only makes sure of the database and hands the role
    /// a fresh password, sealed over the old one.
    async fn create_space(&self, t: &Tenant) -> Result<(), StepError> {
        let space = space_of(t)?;
        if let Some(endpoint) = self.data_plane_of(t) {
            return self.initialize_remotely(t, space, endpoint).await;
        }
        let driver = self.spaces.driver(&space.shard)?;
        let poolable = space.kind == Isolation::Database && driver.engine() == Engine::Postgres;
        let from_pool = if poolable && !self.has_credentials(t.id).await? {
            self.catalog.pool_claim(&space.shard, t.id).await?
        } else {
            None
        };
        if let Some(entry) = from_pool {
            // The pool's credentials, sealed for the pooled database's name when it was made:
            // the driver may hand its password over instead of making a fresh one. Unreadable,
            // the adoption makes a fresh one.
            let pooled_credentials =
                Credentials::open(self.master_key()?, &entry.database, &entry.secret).ok();
            let adoption = driver
                .adopt(&entry.database, t.id, pooled_credentials.as_ref())
                .await;
            let (adopted, credentials) = match adoption {
                Ok(adopted) => adopted,
                Err(SpaceError::NotPooled(database)) => {
                    // Gone (dropped by hand): the entry is forgotten and a database created.
                    tracing::warn!(%database, "a pooled database is missing; creating one instead");
                    self.catalog.pool_remove(entry.id).await?;
                    return Box::pin(self.create_space(t)).await;
                }
                Err(e) => return Err(e.into()),
            };
            self.catalog
                .pool_adopted(PoolAdoption {
                    entry: entry.id,
                    tenant: t.id,
                    space: adopted,
                    schema_version: entry.schema_version,
                    secret_name: DATABASE_SECRET.to_owned(),
                    sealed: self.seal_credentials(t.id, &credentials)?,
                })
                .await?;
            tracing::info!(database = %entry.database, "claimed a database from the warm pool");
            return Ok(());
        }
        if let Some(credentials) = driver.create(space).await? {
            self.store_credentials(t.id, &credentials).await?;
        }
        Ok(())
    }

    /// Brings the tenant's space to the latest migration and records the version it reached.
    pub(crate) async fn migrate_space(
        &self,
        t: &Tenant,
        space: &tenantry_core::space::Space,
    ) -> crate::error::Result<()> {
        let version = self.spaces.driver(&space.shard)?.migrate(space).await?;
        if version != t.schema_version {
            self.catalog
                .update_tenant(
                    t.id,
                    TenantUpdate {
                        schema_version: Some(version),
                        ..TenantUpdate::default()
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Removes the tenant's space (and the old place of a move still in its rollback window)
    /// and forgets its credentials.
    async fn remove_space(&self, t: &Tenant) -> Result<(), StepError> {
        self.remove_move_window(t).await?;
        if let Some(space) = &t.space {
            self.spaces
                .driver(&space.shard)?
                .remove(space, t.id)
                .await?;
        }
        self.catalog.delete_secrets(t.id).await?;
        Ok(())
    }

    /// Checks that a provisioned tenant has everything it should before it turns active.
    async fn verify(&self, t: &Tenant) -> Result<(), StepError> {
        let space = space_of(t)?;
        let driver = self.spaces.driver(&space.shard)?;
        // The space, the storage and the licence are checked at once: three stores.
        let (status, storage, licence) = tokio::join!(
            driver.status(space, t.id),
            self.storage.exists(&t.region, t.id),
            self.licence(t)
        );
        let status = status?;
        let latest = self.app.latest_version(driver.engine()).await?;
        let seeds = self.app.seeds()?.len() as i64;
        let mut problems = Vec::new();
        if !status.exists {
            problems.push("its space does not exist".to_string());
        }
        if status.schema_version != latest {
            problems.push(format!(
                "its schema is at version {:?}, not {:?}",
                status.schema_version, latest
            ));
        }
        if status.admins < 1 {
            problems.push("it has no admin user".into());
        }
        if status.seeds_applied != seeds {
            problems.push(format!(
                "{} of {seeds} seeds are applied",
                status.seeds_applied
            ));
        }
        if !storage? {
            problems.push("its storage prefix does not exist".into());
        }
        match licence? {
            None => problems.push("it has no licence".into()),
            Some(check) => {
                if let Err(e) = check.verified {
                    problems.push(format!("its licence does not verify: {e}"));
                }
            }
        }
        if let Some(compute) = self.compute_status(t).await?
            && compute.state != tenantry_compute::ComputeState::Running
        {
            problems.push(format!("its compute is {}", compute.state));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StepError::permanent(format!(
                "tenant {} failed verification: {}",
                t.slug,
                problems.join("; ")
            )))
        }
    }
}

fn space_of(t: &Tenant) -> Result<&tenantry_core::space::Space, StepError> {
    t.space
        .as_ref()
        .ok_or_else(|| StepError::permanent(format!("tenant {} has no space recorded yet", t.slug)))
}
