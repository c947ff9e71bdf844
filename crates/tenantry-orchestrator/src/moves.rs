//! Live tenant moves (PostgreSQL): a durable operation that takes a tenant's data to another
//! isolation or shard of its region while it keeps serving, with the engine's building blocks
//! ([`tenantry_engines::postgres::moves`]).
//!
//! `move`: **prepare** (`TenantMoveStarted`), **create_target** (the target space at the
//! latest version), **capture** (the source logs the tenant's changes), **copy** (batches by
//! key; the last key of each table is kept in the operation's parameters, so a resumed copy
//! goes on from there), **catch_up** (the logged changes), **switch** (both sides compared in
//! full at a snapshot while the tenant writes; then its writes paused, the last changes
//! applied, the rows changed since compared, sequences advanced, the old place set to refuse the tenant's writes, then the catalog flipped to the
//! target with a new epoch and `TenantMoved`). The source stays, for a rollback window.
//! `move_complete`: **stop_capture**, **remove_source** (the tenant's rows, schema or
//! database at the old place), **finish** (`TenantMoveCompleted`).
//! `move_rollback`, during the window: **switch_back** (the switch again, the other way: the
//! new place, which logs the tenant's changes from its switch on, is paused and its changes
//! applied to the old place, which the catalog points at again, `TenantMoveRolledBack`),
//! **remove_target**.
//!
//! A move that fails before the switch is rolled back: the capture stops and the target space
//! is removed (never the source, never another tenant's rows), and `TenantMoveFailed` says so.
//! `--cancel` ([`Orchestrator::request_move_cancel`]) makes a move under way fail that way at
//! its next step or copy batch.

use crate::error::{OrchestratorError, Result, StepError};
use crate::mover::Mover;
use crate::service::Orchestrator;
use crate::shards::DATABASE_SECRET;
use serde_json::{Value, json};
use tenantry_catalog::model::{
    Cause, Checkpoint, NewEvent, NewOperation, Operation, OperationKind, OperationState,
    Relocation, Tenant,
};
use tenantry_core::events::EventType;
use tenantry_core::space::Space;
use tenantry_core::{Isolation, TenantState};
use tenantry_engines::postgres::PgSpaces;
use tenantry_engines::postgres::moves::{
    MoveRoute, MoveTable, TableChecksum, TouchedKeys, key_ranges,
};
use uuid::Uuid;

/// The steps of a move, in order.
pub const MOVE_STEPS: &[&str] = &[
    "prepare",
    "create_target",
    "capture",
    "copy",
    "catch_up",
    "switch",
];
/// The steps of completing a move.
pub const MOVE_COMPLETE_STEPS: &[&str] = &["stop_capture", "remove_source", "finish"];
/// The steps of rolling a move back.
pub const MOVE_ROLLBACK_STEPS: &[&str] = &["switch_back", "remove_target"];

/// Rows per copy batch.
const COPY_BATCH: i64 = 10_000;
/// Differing key ranges named per table when a comparison fails.
const DIFFERENCES_SHOWN: usize = 10;
/// Changes applied per round trip.
const APPLY_BATCH: i64 = 1_000;

/// Where a move goes, as recorded in its operation's parameters.
struct MovePlan {
    source: Space,
    target: Space,
    /// The regions of a residency change: from, to.
    residency: Option<(String, String)>,
}

impl MovePlan {
    fn of(op: &Operation) -> std::result::Result<Self, StepError> {
        let space = |key: &str| {
            serde_json::from_value::<Space>(op.params[key].clone()).map_err(|e| {
                StepError::permanent(format!("the move's {key} space is not recorded: {e}"))
            })
        };
        let region = |end: &str| op.params["residency"][end].as_str().map(str::to_owned);
        Ok(Self {
            source: space("source")?,
            target: space("target")?,
            residency: region("from").zip(region("to")),
        })
    }
}

impl Orchestrator {
    /// Queues a live move of tenant `slug` to `to` isolation, on `shard` (default: the
    /// region's shard the resolver would pick for a new tenant of that isolation).
    pub async fn request_move(
        &self,
        slug: &str,
        to: Isolation,
        shard: Option<&str>,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        self.request_move_to(slug, to, shard, None, actor).await
    }

    /// [`Orchestrator::request_move`], to `region` when given: a residency change, recorded as
    /// such (the move's events and audit carry `residency`), with the tenant's storage prefix
    /// following its data at the switch. A shard of another region is refused without it.
    pub async fn request_move_to(
        &self,
        slug: &str,
        to: Isolation,
        shard: Option<&str>,
        region: Option<&str>,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let bad = |m: String| Err(OrchestratorError::InvalidRequest(m));
        let region = region.unwrap_or(&tenant.region);
        if !self.config.regions.contains_key(region) {
            return Err(self.unknown_region(region));
        }
        if tenant.state != TenantState::Active {
            return bad(format!(
                "tenant {slug} is {}: only an active tenant moves",
                tenant.state
            ));
        }
        let Some(source) = tenant.space.clone() else {
            return bad(format!("tenant {slug} has no space to move"));
        };
        // One move at a time: a switched move keeps its old place until it is completed or
        // rolled back, and a new one would leave that place behind.
        if self.move_in_window(&tenant).await?.is_some() {
            return bad(format!(
                "tenant {slug}'s last move is in its rollback window: `tenantry tenant move {slug} --complete` (or `--rollback`) first"
            ));
        }
        let target_shard = match shard {
            Some(name) => {
                let shard = self
                    .catalog
                    .shards()
                    .await?
                    .into_iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| tenantry_catalog::CatalogError::ShardNotFound(name.into()))?;
                if shard.region != region {
                    return bad(if region == tenant.region {
                        format!(
                            "shard {name} is in region {}, not {region}: a move stays in the tenant's region unless --region {} asks for a residency change",
                            shard.region, shard.region
                        )
                    } else {
                        format!("shard {name} is in region {}, not {region}", shard.region)
                    });
                }
                if shard.state == tenantry_core::shard::ShardState::Draining {
                    return bad(format!(
                        "shard {name} is draining: it takes no new tenant (`tenantry shard activate {name}` first)"
                    ));
                }
                shard.name
            }
            None if to == Isolation::Database => {
                let usage = self.catalog.shard_usage().await?;
                let shared = self.config.shared_shard(region).ok_or_else(|| {
                    OrchestratorError::InvalidRequest(format!("region {region} has no shard"))
                })?;
                tenantry_core::shard::resolve_shard(region, to, &shared.name, None, &usage)?
                    .name
                    .clone()
            }
            None => self
                .config
                .shared_shard(region)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| source.shard.clone()),
        };
        let (from_driver, to_driver) = (
            self.spaces.driver(&source.shard)?,
            self.spaces.driver(&target_shard)?,
        );
        if from_driver.engine() != to_driver.engine() {
            return bad(format!(
                "a live move stays on one engine: shard {} is {}, shard {target_shard} is {}",
                source.shard,
                from_driver.engine(),
                to_driver.engine()
            ));
        }
        if !to_driver.supports(to) {
            return bad(format!(
                "shard {target_shard} ({}) has no {to} isolation: move tenant {slug} to another isolation",
                to_driver.engine()
            ));
        }
        let target = match (source.kind, to, source.database.as_deref()) {
            // A PostgreSQL database of its own keeps its name (and its role's) on the other
            // server: one adopted from the warm pool is not named after the tenant.
            (Isolation::Database, Isolation::Database, Some(database)) => {
                Space::dedicated_database(&target_shard, database)
            }
            _ => to_driver.locate(tenant.id, to)?,
        };
        if target == source {
            return bad(format!(
                "tenant {slug} already lives there ({} on {})",
                to, target_shard
            ));
        }
        // Two shards may be one server (or one directory): there the target could be the
        // source itself (a database of its own, or the region's shared database, has the same
        // name on both).
        if source.shard != target.shard
            && (&source.database, &source.schema, &source.path)
                == (&target.database, &target.schema, &target.path)
        {
            let same_place = match (from_driver.postgres(), to_driver.postgres()) {
                (Some(here), Some(there)) => {
                    let (here, there) =
                        tokio::try_join!(here.server_identity(), there.server_identity())?;
                    (here == there).then_some("the same PostgreSQL server")
                }
                _ => Some("the same directory"),
            };
            if let Some(same_place) = same_place {
                return bad(format!(
                    "shards {} and {target_shard} are on {same_place}, where tenant {slug}'s {to} space would be the one it has: move it to a shard elsewhere",
                    source.shard
                ));
            }
        }
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind: OperationKind::Move,
            steps: MOVE_STEPS.to_vec(),
            params: json!({
                "requested_by": actor, "source": source, "target": target, "copy": {},
                "residency": (region != tenant.region)
                    .then(|| json!({ "from": tenant.region, "to": region })),
            }),
        };
        let op = self.catalog.create_operation(tenant.id, op).await?;
        Ok((tenant, op))
    }

    /// Queues the end of tenant `slug`'s last move: its data at the old place is removed.
    pub async fn request_move_complete(
        &self,
        slug: &str,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        self.request_after_move(
            slug,
            OperationKind::MoveComplete,
            MOVE_COMPLETE_STEPS,
            actor,
        )
        .await
    }

    /// Queues the undoing of tenant `slug`'s last move: it goes back to its old place with the
    /// changes it received at the new one, and the new place is removed.
    pub async fn request_move_rollback(
        &self,
        slug: &str,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        self.request_after_move(
            slug,
            OperationKind::MoveRollback,
            MOVE_ROLLBACK_STEPS,
            actor,
        )
        .await
    }

    /// Asks the tenant's move under way to stop before its switch: its next step (or copy
    /// batch) fails as cancelled, and the move is undone like a failed one — the target and
    /// the capture go, the tenant stays where it is. Returns the move's operation, to follow to
    /// its end (a move whose worker died is undone by whoever runs it next).
    pub async fn request_move_cancel(
        &self,
        slug: &str,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let last = self.last_move(&tenant).await?;
        let bad = |m: String| Err(OrchestratorError::InvalidRequest(m));
        let Some(op) = last.filter(|op| op.kind == OperationKind::Move) else {
            return bad(format!("tenant {slug} has no move under way to cancel"));
        };
        match op.state {
            OperationState::Succeeded => {
                return bad(format!(
                    "the move of {slug} has switched already: `tenantry tenant move {slug} --rollback` takes it back"
                ));
            }
            OperationState::RollingBack => {
                return bad(format!("the move of {slug} is being undone already"));
            }
            state if !state.is_open() => {
                return bad(format!(
                    "tenant {slug} has no move under way to cancel (its last one {state})"
                ));
            }
            _ => {}
        }
        let cancel = json!({ "cancel": { "by": actor, "at": chrono::Utc::now() } });
        self.catalog.merge_operation_params(op.id, &cancel).await?;
        tracing::info!(tenant = %slug, operation = %op.id, by = actor, "move cancel requested");
        let op = self.catalog.operation(op.id).await?;
        Ok((tenant, op))
    }

    /// The tenant's last move, completion or rollback of a move.
    pub(crate) async fn last_move(&self, tenant: &Tenant) -> Result<Option<Operation>> {
        Ok(self
            .catalog
            .operations(Some(tenant.id), 50)
            .await?
            .into_iter()
            .find(|op| {
                matches!(
                    op.kind,
                    OperationKind::Move | OperationKind::MoveComplete | OperationKind::MoveRollback
                )
            }))
    }

    /// Ends the rollback window of the tenant's last move, for a tenant being deleted: the
    /// change capture stops at both places, and the old place's data (with, after a residency
    /// change, its files in the old region) is removed. Nothing to do without such a window.
    pub(crate) async fn remove_move_window(
        &self,
        tenant: &Tenant,
    ) -> std::result::Result<(), StepError> {
        let Some(moved) = self.move_in_window(tenant).await? else {
            return Ok(());
        };
        let plan = MovePlan::of(&moved)?;
        self.capture(&plan.source, tenant.id, false).await?;
        self.capture(&plan.target, tenant.id, false).await?;
        self.spaces
            .driver(&plan.source.shard)?
            .remove(&plan.source, tenant.id)
            .await?;
        if let Some((from, _)) = &plan.residency {
            self.storage.remove(from, tenant.id).await?;
        }
        Ok(())
    }

    /// The tenant's last move when it is in its rollback window: switched, and neither
    /// completed nor rolled back since.
    pub(crate) async fn move_in_window(&self, tenant: &Tenant) -> Result<Option<Operation>> {
        Ok(self
            .last_move(tenant)
            .await?
            .filter(|op| op.kind == OperationKind::Move && op.state == OperationState::Succeeded))
    }

    /// Fails the step when the move was asked to cancel.
    async fn unless_cancelled(&self, op: &Operation) -> std::result::Result<(), StepError> {
        let params = self.catalog.operation(op.id).await?.params;
        match params.get("cancel") {
            Some(cancel) if !cancel.is_null() => Err(StepError::permanent(format!(
                "cancelled by {}",
                cancel["by"].as_str().unwrap_or("an operator")
            ))),
            _ => Ok(()),
        }
    }

    /// Queues `kind` for the tenant's last move, which must have switched and be neither
    /// completed nor rolled back.
    async fn request_after_move(
        &self,
        slug: &str,
        kind: OperationKind,
        steps: &[&'static str],
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let Some(moved) = self.move_in_window(&tenant).await? else {
            return Err(OrchestratorError::InvalidRequest(format!(
                "tenant {slug} has no move to complete or roll back: `tenantry tenant move {slug} --to …` first"
            )));
        };
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind,
            steps: steps.to_vec(),
            params: json!({
                "requested_by": actor, "move": moved.id,
                "source": moved.params["source"], "target": moved.params["target"],
                "residency": moved.params["residency"],
            }),
        };
        let op = self.catalog.create_operation(tenant.id, op).await?;
        Ok((tenant, op))
    }

    fn pg(&self, shard: &str) -> std::result::Result<&PgSpaces, StepError> {
        self.spaces
            .driver(shard)?
            .postgres()
            .ok_or_else(|| StepError::permanent(format!("shard {shard} is not a PostgreSQL shard")))
    }

    /// A move's milestone in the catalog (see `CatalogStore::relocate`).
    async fn milestone(
        &self,
        op: &Operation,
        idx: i64,
        relocation: Option<Relocation>,
        event: EventType,
        details: Value,
    ) -> std::result::Result<(), StepError> {
        let tenant = self.catalog.tenant(op.tenant_id).await?;
        let mut payload = crate::steps::payload(&tenant, op);
        payload["move"] = details.clone();
        let cause = Cause {
            details,
            ..self.cause_of(
                op,
                format!(
                    "{} {}",
                    op.kind,
                    MOVE_STEPS.get(idx as usize).unwrap_or(&"step")
                ),
            )
        };
        self.catalog
            .relocate(
                tenant.id,
                relocation,
                cause,
                vec![NewEvent {
                    event_type: event,
                    payload,
                }],
                Some(Checkpoint {
                    operation: op.id,
                    step: idx,
                }),
            )
            .await?;
        Ok(())
    }

    /// Runs step `name` of a move or a move's completion. Returns whether it wrote its own
    /// checkpoint.
    pub(crate) async fn run_move_step(
        &self,
        op: &Operation,
        idx: i64,
        name: &str,
        progress: &dyn crate::runner::Progress,
    ) -> std::result::Result<bool, StepError> {
        let plan = MovePlan::of(op)?;
        let tenant = op.tenant_id;
        let mover = self.mover(tenant, &plan.source, &plan.target)?;
        let (source_driver, target_driver) = (
            self.spaces.driver(&plan.source.shard)?,
            self.spaces.driver(&plan.target.shard)?,
        );
        let details = json!({
            "from": plan.source, "to": plan.target, "residency": op.params["residency"],
        });
        if op.kind == OperationKind::Move {
            self.unless_cancelled(op).await?;
        }
        match (op.kind, name) {
            (OperationKind::Move, "prepare") => {
                self.milestone(op, idx, None, EventType::TenantMoveStarted, details)
                    .await?;
                return Ok(true);
            }
            (OperationKind::Move, "create_target") => {
                if let Some((pg, credentials)) = self.credentials_of_both_ends(op, &plan).await? {
                    pg.create_with_credentials(&plan.target, &credentials)
                        .await?;
                } else if let Some(credentials) = target_driver.create(&plan.target).await? {
                    self.store_credentials(op.tenant_id, &credentials).await?;
                }
                target_driver.migrate(&plan.target).await?;
            }
            (OperationKind::Move, "capture") => self.capture(&plan.source, tenant, true).await?,
            (OperationKind::Move, "copy") => self.copy(op, mover, progress).await?,
            (OperationKind::Move, "catch_up") => {
                // Until a round finds less than a batch: under a steady write load the log is
                // never empty, and what is left is applied by the switch, writes paused.
                let tables = mover.tables().await?;
                while mover.apply_changes(&tables, APPLY_BATCH).await? >= APPLY_BATCH as usize {
                    self.unless_cancelled(op).await?;
                }
            }
            (OperationKind::Move, "switch") => {
                // Changes at the new place are logged from the start, for a rollback.
                self.capture(&plan.target, tenant, true).await?;
                let mut details = details;
                details["paused_ms"] = json!(self.switch_over(mover).await?);
                // Its files follow its data to the new region, kept at the old one too until
                // the move completes.
                if let Some((from, to)) = &plan.residency {
                    self.storage.copy_prefix(from, to, op.tenant_id).await?;
                }
                // The old place refuses the tenant's writes from now on; then the catalog
                // points at the new one (a crash between the two runs the step again).
                let there = Relocation::to(&plan.target);
                self.milestone(op, idx, Some(there), EventType::TenantMoved, details)
                    .await?;
                self.restart_compute_after_switch(op, &plan).await;
                return Ok(true);
            }
            (OperationKind::MoveComplete, "stop_capture") => {
                self.capture(&plan.source, tenant, false).await?;
                self.capture(&plan.target, tenant, false).await?;
            }
            (OperationKind::MoveComplete, "remove_source") => {
                source_driver.remove(&plan.source, op.tenant_id).await?;
                if let Some((from, _)) = &plan.residency {
                    self.storage.remove(from, op.tenant_id).await?;
                }
                // Out of a database of its own: its credentials go with it (unless they are
                // those of the new database too).
                if plan.source.kind == Isolation::Database
                    && plan.target.kind != Isolation::Database
                {
                    self.catalog
                        .delete_secret(op.tenant_id, DATABASE_SECRET)
                        .await?;
                }
            }
            (OperationKind::MoveRollback, "switch_back") => {
                // The way back: from the target, where the changes since the switch were
                // logged, to the source, which holds the tenant as it was at the switch.
                let back = self.mover(tenant, &plan.target, &plan.source)?;
                let home = Relocation::to(&plan.source);
                // The credentials reach the old database again (the reconciler may have given
                // the new one's role a fresh password since the switch).
                if let Some((_, credentials)) = self.credentials_of_both_ends(op, &plan).await? {
                    self.pg(&plan.source.shard)?
                        .create_with_credentials(&plan.source, &credentials)
                        .await?;
                }
                let mut details = details;
                details["paused_ms"] = json!(self.switch_over(back).await?);
                // The new place refuses the tenant's writes now; the old one takes them again,
                // unlogged, before the catalog points back at it.
                self.capture(&plan.source, tenant, false).await?;
                // Files written in the new region since the switch go home too.
                if let Some((from, to)) = &plan.residency {
                    self.storage.copy_prefix(to, from, op.tenant_id).await?;
                }
                self.milestone(
                    op,
                    idx,
                    Some(home),
                    EventType::TenantMoveRolledBack,
                    details,
                )
                .await?;
                self.restart_compute_after_switch(op, &plan).await;
                return Ok(true);
            }
            (OperationKind::MoveRollback, "remove_target") => {
                self.capture(&plan.target, tenant, false).await?;
                self.remove_target(&plan, op).await?;
            }
            (OperationKind::MoveComplete, "finish") => {
                self.milestone(op, idx, None, EventType::TenantMoveCompleted, details)
                    .await?;
                return Ok(true);
            }
            (kind, other) => {
                return Err(StepError::permanent(format!(
                    "unknown step {other:?} of {kind}"
                )));
            }
        }
        Ok(false)
    }

    /// Copies every table, resuming each from the last key recorded in the operation, and
    /// reports the rows copied of the tenant's rows at the start.
    async fn copy(
        &self,
        op: &Operation,
        mover: Mover<'_>,
        progress: &dyn crate::runner::Progress,
    ) -> std::result::Result<(), StepError> {
        let tables = mover.tables().await?;
        // The recorded progress, re-read: this step may be a resumed one.
        let mut params = self.catalog.operation(op.id).await?.params;
        let total = mover.count_rows(&tables).await?;
        params["total"] = json!(total);
        for table in &tables {
            let copied_to = &params["copy"][&table.name];
            if copied_to == &json!("done") {
                continue;
            }
            let mut after = (!copied_to.is_null()).then(|| copied_to.clone());
            loop {
                let (n, last) = mover.copy_batch(table, after.as_ref(), COPY_BATCH).await?;
                params["copy"][&table.name] = match &last {
                    Some(key) => key.clone(),
                    None => json!("done"),
                };
                let copied = params["copied"].as_i64().unwrap_or(0) + n as i64;
                params["copied"] = json!(copied);
                let progress_made = json!({
                    "copy": params["copy"], "copied": copied, "total": params["total"],
                });
                self.catalog
                    .merge_operation_params(op.id, &progress_made)
                    .await?;
                self.unless_cancelled(op).await?;
                progress.rows(op, "copy", copied as u64, total.max(copied) as u64);
                match last {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
            tracing::info!(
                table = table.name,
                copied = params["copied"].as_i64(),
                "table copied"
            );
        }
        Ok(())
    }

    /// Compares both sides in full at one point while the tenant keeps writing, catches up,
    /// then pauses the tenant's writes at the route's source, applies the last changes,
    /// compares the rows changed since the full comparison, advances the target's sequences,
    /// and leaves the source refusing the tenant's writes. Returns how long the writes were
    /// paused: the last changes and the rows they touched, not the tenant's size.
    pub(crate) async fn switch(&self, route: MoveRoute<'_>) -> std::result::Result<u64, StepError> {
        let source_driver = self.pg(&route.source.shard)?;
        let tables: Vec<MoveTable> = source_driver.move_tables(route.source).await?;
        let (at_source, seen) = source_driver
            .snapshot_checksums(route.source, route.tenant, &tables)
            .await?;
        source_driver
            .apply_listed_changes(route, &tables, &seen)
            .await?;
        let at_target = route
            .to
            .checksums(route.target, route.tenant, &tables)
            .await?;
        if let Err(differ) = same_rows(&at_source, &at_target) {
            let differing: Vec<&MoveTable> = tables
                .iter()
                .zip(at_source.iter().zip(&at_target))
                .filter(|(_, (a, b))| a != b)
                .map(|(table, _)| table)
                .collect();
            return Err(self
                .locate_differences(route, &tables, &differing, differ)
                .await);
        }
        // Every change applied from here on is noted: the pause compares exactly its rows.
        let mut touched = TouchedKeys::default();
        while source_driver
            .apply_changes_noting(route, &tables, APPLY_BATCH, &mut touched)
            .await?
            >= APPLY_BATCH as usize
        {}
        let started = std::time::Instant::now();
        let pause = source_driver
            .pause_writes(route.source, route.tenant)
            .await?;
        let flipped = async {
            while source_driver
                .apply_changes_noting(route, &tables, APPLY_BATCH, &mut touched)
                .await?
                > 0
            {}
            let (at_source, at_target) = tokio::try_join!(
                source_driver.touched_checksums(route.source, route.tenant, &tables, &touched),
                route
                    .to
                    .touched_checksums(route.target, route.tenant, &tables, &touched),
            )?;
            same_rows(&at_source, &at_target)?;
            route.to.advance_sequences(route.target, &tables).await?;
            Ok::<_, StepError>(())
        }
        .await;
        if let Err(e) = flipped {
            pause.release(false).await?;
            return Err(e);
        }
        pause.release(true).await?;
        metrics::histogram!("tenantry_move_pause_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(
            tenant = %route.tenant,
            rows_compared_in_pause = touched.len(),
            pause_ms = started.elapsed().as_millis() as u64,
            "switched"
        );
        Ok(started.elapsed().as_millis() as u64)
    }

    /// Adds to `differ` (a failed comparison) where the two sides differ, by key range: the
    /// tenant's writes are paused for a moment (the move fails anyway), the last changes applied,
    /// and every differing table's rows compared one by one. The writes then go on at the source.
    async fn locate_differences(
        &self,
        route: MoveRoute<'_>,
        tables: &[MoveTable],
        differing: &[&MoveTable],
        differ: StepError,
    ) -> StepError {
        let located = async {
            let source_driver = self.pg(&route.source.shard)?;
            let pause = source_driver
                .pause_writes(route.source, route.tenant)
                .await?;
            let described = async {
                while source_driver
                    .apply_changes(route, tables, APPLY_BATCH)
                    .await?
                    > 0
                {}
                let mut parts = Vec::new();
                for table in differing {
                    let (at_source, at_target) = tokio::try_join!(
                        source_driver.row_hashes(route.source, route.tenant, table),
                        route.to.row_hashes(route.target, route.tenant, table),
                    )?;
                    let ranges = key_ranges(&at_source, &at_target, DIFFERENCES_SHOWN);
                    parts.push(format!(
                        "{}: {}",
                        table.name,
                        if ranges.is_empty() {
                            "equal once the last changes were applied".to_owned()
                        } else {
                            ranges.join(", ")
                        }
                    ));
                }
                Ok::<_, StepError>(parts.join("; "))
            }
            .await;
            pause.release(false).await?;
            described
        }
        .await;
        match located {
            Ok(where_) => StepError::permanent(format!(
                "{}; the rows that differ, by key: {where_}",
                differ.message
            )),
            Err(e) => {
                tracing::warn!(error = %e.message, "locating the differences failed");
                differ
            }
        }
    }

    /// A dedicated tenant whose environment changed with the switch gets its compute restarted
    /// with the new one: `DATABASE_URL` when either end is a database of its own,
    /// `TENANT_REGION` and `STORAGE_PREFIX` after a residency change. Best effort: the move
    /// stands, and a failure is logged (the reconciler restarts compute that is down).
    async fn restart_compute_after_switch(&self, op: &Operation, plan: &MovePlan) {
        let own_database = [&plan.source, &plan.target]
            .iter()
            .any(|space| space.kind == Isolation::Database);
        if plan.residency.is_none() && !own_database {
            return;
        }
        let restarted = async {
            let t = self.catalog.tenant(op.tenant_id).await?;
            if t.compute == tenantry_core::Compute::Dedicated && t.state == TenantState::Active {
                self.stop_compute(&t).await?;
                self.ensure_compute(&t).await?;
            }
            Ok::<_, OrchestratorError>(())
        }
        .await;
        if let Err(e) = restarted {
            tracing::warn!(tenant = %op.tenant_id, error = %e, "restarting compute in the new region failed");
        }
    }

    /// Removes a move's target space, and the credentials of a target database unless the
    /// source is a database of the tenant's own too (whose credentials they are as well).
    async fn remove_target(
        &self,
        plan: &MovePlan,
        op: &Operation,
    ) -> std::result::Result<(), StepError> {
        self.spaces
            .driver(&plan.target.shard)?
            .remove(&plan.target, op.tenant_id)
            .await?;
        if let Some((_, to)) = &plan.residency {
            self.storage.remove(to, op.tenant_id).await?;
        }
        if plan.target.kind == Isolation::Database && plan.source.kind != Isolation::Database {
            self.catalog
                .delete_secret(op.tenant_id, DATABASE_SECRET)
                .await?;
        }
        Ok(())
    }

    /// For a move from one PostgreSQL database of the tenant's own to another (on another
    /// server): the target's driver and the tenant's credentials, which reach both. `None` for
    /// any other move.
    async fn credentials_of_both_ends(
        &self,
        op: &Operation,
        plan: &MovePlan,
    ) -> std::result::Result<Option<(&PgSpaces, tenantry_engines::driver::Credentials)>, StepError>
    {
        let target = self.spaces.driver(&plan.target.shard)?.postgres();
        let Some(target) = target.filter(|_| {
            plan.source.kind == Isolation::Database && plan.target.kind == Isolation::Database
        }) else {
            return Ok(None);
        };
        match self.credentials(op.tenant_id).await? {
            Some(credentials) => Ok(Some((target, credentials))),
            None => Err(StepError::permanent(format!(
                "tenant {} has a database of its own but no stored credentials: `tenantry reconcile` recreates its role first",
                op.tenant_id
            ))),
        }
    }

    /// Records that a move failed (or was cancelled) and was undone: `TenantMoveFailed`.
    pub(crate) async fn move_failed(&self, op: &Operation, step: &str, error: &str) -> Result<()> {
        let tenant = self.catalog.tenant(op.tenant_id).await?;
        let details = json!({
            "from": op.params["source"], "to": op.params["target"],
            "step": step, "error": error, "cancelled_by": op.params["cancel"]["by"],
        });
        let mut payload = crate::steps::payload(&tenant, op);
        payload["move"] = details.clone();
        let cause = Cause {
            details,
            ..self.cause_of(op, format!("{} rollback", op.kind))
        };
        let event = NewEvent {
            event_type: EventType::TenantMoveFailed,
            payload,
        };
        self.catalog
            .relocate(tenant.id, None, cause, vec![event], None)
            .await?;
        Ok(())
    }

    /// Undoes a step of a failed move: the target and the capture go, the source stays.
    pub(crate) async fn undo_move_step(
        &self,
        op: &Operation,
        name: &str,
    ) -> std::result::Result<(), StepError> {
        if op.kind != OperationKind::Move {
            return Ok(());
        }
        let plan = MovePlan::of(op)?;
        match name {
            "create_target" => self.remove_target(&plan, op).await?,
            "capture" => self.capture(&plan.source, op.tenant_id, false).await?,
            _ => {}
        }
        Ok(())
    }
}

/// An error naming every table whose rows differ between the two sides.
fn same_rows(
    at_source: &[TableChecksum],
    at_target: &[TableChecksum],
) -> std::result::Result<(), StepError> {
    let differing: Vec<String> = at_source
        .iter()
        .zip(at_target)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| a.beside(b))
        .collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(StepError::permanent(format!(
            "the target differs from the source: {}",
            differing.join("; ")
        )))
    }
}
