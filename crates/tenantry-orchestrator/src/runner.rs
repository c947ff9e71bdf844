//! Running an operation: take its lease, run its pending steps in order with retries, checkpoint
//! each, and on a permanent failure undo the completed steps in reverse order.
//!
//! The run is driven entirely by what the catalog records, so a run that starts on an
//! operation another process left half-done (a crash, a kill) simply continues it: steps marked
//! `done` are skipped, a step marked `running` is run again (steps are idempotent), and an
//! operation found `rolling_back` finishes its rollback.

use crate::error::{OrchestratorError, Result, StepError};
use crate::failpoints::Point;
use crate::service::Orchestrator;
use rand::Rng;
use std::time::{Duration, Instant};
use tenantry_catalog::model::{
    Cause, Failure, NewEvent, Operation, OperationKind, OperationState, StepState, TenantUpdate,
};
use tenantry_core::TenantState;
use tenantry_core::events::EventType;
use tracing::Instrument;
use uuid::Uuid;

/// How many times a step with a transient error is tried in all.
const MAX_ATTEMPTS: u32 = 5;
/// The first retry's delay; doubled each time, capped at [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why running the steps stopped.
enum StepsFailed {
    /// A step failed for good: its name and the error.
    Permanent(String, String),
    /// The lease went to another worker.
    LeaseLost(OrchestratorError),
}

/// Aborts the heartbeat task when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Told about an operation's progress (the CLI draws a progress bar with it).
pub trait Progress: Send + Sync {
    fn step_started(&self, _op: &Operation, _idx: usize, _name: &str) {}
    fn step_finished(&self, _op: &Operation, _idx: usize, _name: &str, _took: Duration) {}
    fn step_retrying(&self, _name: &str, _attempt: u32, _error: &str) {}
    fn rolling_back(&self, _op: &Operation, _step: &str, _error: &str) {}
    /// A step that works through rows (a move's copy) has done `done` of `total`.
    fn rows(&self, _op: &Operation, _step: &str, _done: u64, _total: u64) {}
}

/// Progress nobody watches.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The delay before retry number `attempt` (1-based): exponential, capped, with ±50% jitter so
/// that many workers retrying at once do not stay in step.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(rand::rng().random_range(0.5..1.5))
}

impl Orchestrator {
    /// Runs (or continues) operation `id` to its end.
    pub async fn run(&self, id: Uuid, progress: &dyn Progress) -> Result<Operation> {
        let op = self.claim(id).await?;
        if !op.state.is_open() {
            return Ok(op);
        }
        let span = tracing::info_span!("operation", operation = %op.id, tenant = %op.tenant_id, kind = %op.kind);
        self.run_claimed(op, progress).instrument(span).await
    }

    async fn run_claimed(&self, mut op: Operation, progress: &dyn Progress) -> Result<Operation> {
        let id = op.id;
        let _heartbeat = self.heartbeat(id);
        let started = Instant::now();
        tracing::info!(state = %op.state, "running operation");
        if op.state != OperationState::RollingBack {
            let (step, error) = match self.run_steps(&op, progress).await {
                Ok(()) => return self.succeed(&op, started).await,
                Err(StepsFailed::LeaseLost(e)) => return Err(e),
                Err(StepsFailed::Permanent(step, error)) => (step, error),
            };
            tracing::warn!(%step, %error, "step failed for good; rolling back");
            progress.rolling_back(&op, &step, &error);
            self.catalog
                .set_operation_state(
                    id,
                    OperationState::RollingBack,
                    Some(format!("{step}: {error}")),
                )
                .await?;
            op = self.catalog.operation(id).await?;
        }
        let error = self.roll_back(&op).await?;
        let tenant = self.catalog.tenant(op.tenant_id).await.ok();
        self.upkeep_after(&op, tenant.as_ref());
        metrics::counter!("tenantry_operations_total", "kind" => op.kind.as_str(), "outcome" => "failed")
            .increment(1);
        Err(error)
    }

    async fn succeed(&self, op: &Operation, started: Instant) -> Result<Operation> {
        self.catalog
            .set_operation_state(op.id, OperationState::Succeeded, None)
            .await?;
        let (op, tenant) = tokio::join!(
            self.catalog.operation(op.id),
            self.catalog.tenant(op.tenant_id)
        );
        let (op, tenant) = (op?, tenant.ok());
        let isolation = tenant.as_ref().map_or("unknown", |t| t.isolation.as_str());
        metrics::histogram!("tenantry_operation_duration_seconds", "kind" => op.kind.as_str(), "isolation" => isolation)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("tenantry_operations_total", "kind" => op.kind.as_str(), "outcome" => "succeeded")
            .increment(1);
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "operation succeeded"
        );
        // Only now, not while the operation's last steps run on the same servers.
        self.upkeep_after(&op, tenant.as_ref());
        Ok(op)
    }

    /// Keeps renewing the lease on `id` while the returned guard lives, so that a long step is
    /// not mistaken for a dead worker.
    fn heartbeat(&self, id: Uuid) -> Heartbeat {
        let catalog = self.catalog.clone();
        let worker = self.worker.clone();
        let lease = self.lease;
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = chrono::Utc::now() + lease;
                if let Err(e) = catalog.claim_operation(id, &worker, until).await {
                    tracing::warn!(error = %e, "could not renew the lease");
                }
            }
        }))
    }

    /// Takes or renews the lease on `id`.
    async fn claim(&self, id: Uuid) -> Result<Operation> {
        let until = chrono::Utc::now() + self.lease;
        if let Some(op) = self
            .catalog
            .claim_operation(id, &self.worker, until)
            .await?
        {
            return Ok(op);
        }
        let op = self.catalog.operation(id).await?;
        if !op.state.is_open() {
            return Ok(op);
        }
        match op.lease_owner.as_deref() {
            Some(holder) if crate::worker::holder_is_dead(holder) => {
                // The holder's process is gone: expire its lease now rather than wait for it.
                tracing::warn!(%holder, "the worker holding this operation died; taking it over");
                let past = chrono::Utc::now() - chrono::Duration::seconds(1);
                self.catalog.claim_operation(id, holder, past).await?;
                self.catalog
                    .claim_operation(id, &self.worker, until)
                    .await?
                    .ok_or(OrchestratorError::LeaseHeld(id))
            }
            _ => Err(OrchestratorError::LeaseHeld(id)),
        }
    }

    /// Runs every step not yet done; on a permanent failure returns the step and the error.
    async fn run_steps(
        &self,
        op: &Operation,
        progress: &dyn Progress,
    ) -> std::result::Result<(), StepsFailed> {
        // The lease was taken just before; nobody else can hold it until it expires.
        let mut claimed_at = Instant::now();
        // A step done whose mark is owed: written with the next step's start, a round trip
        // saved per step. A crash in between runs that step again, as a crash just before its
        // mark would (steps are idempotent).
        let mut owed_done: Option<i64> = None;
        for step in op.steps.iter().filter(|s| s.state != StepState::Done) {
            let name = step.name.as_str();
            let fail = |e: StepError| StepsFailed::Permanent(name.to_owned(), e.message);
            // Past half its term, the lease is renewed (the heartbeat may have failed to) and
            // checked: if another worker took the operation over, stop without undoing anything
            // — the operation is theirs now. Before that no other worker can have it, and the
            // round trip is saved.
            if claimed_at.elapsed() >= self.lease / 2 {
                self.claim(op.id).await.map_err(StepsFailed::LeaseLost)?;
                claimed_at = Instant::now();
            }
            let span = tracing::info_span!("step", step = name, idx = step.idx);
            let started = Instant::now();
            progress.step_started(op, step.idx as usize, name);
            let outcome = self
                .run_one(op, step.idx, name, owed_done, progress)
                .instrument(span)
                .await;
            match outcome {
                Ok(checkpointed) => {
                    owed_done = (!checkpointed).then_some(step.idx);
                    let took = started.elapsed();
                    tracing::info!(step = name, took_ms = took.as_millis() as u64, "step done");
                    metrics::histogram!("tenantry_step_duration_seconds", "step" => name.to_owned())
                        .record(took.as_secs_f64());
                    progress.step_finished(op, step.idx as usize, name, took);
                }
                Err(e) => {
                    // The step may have failed before writing its start (a failpoint): the
                    // previous step's mark is written first, or a rollback would miss it.
                    if let Some(done) = owed_done {
                        let _ = self
                            .catalog
                            .set_step_state(op.id, done, StepState::Done, None)
                            .await;
                    }
                    let _ = self
                        .catalog
                        .set_step_state(op.id, step.idx, StepState::Failed, Some(e.message.clone()))
                        .await;
                    return Err(fail(e));
                }
            }
        }
        if let Some(done) = owed_done {
            self.catalog
                .set_step_state(op.id, done, StepState::Done, None)
                .await
                .map_err(|e| StepsFailed::Permanent(format!("step {done}"), e.to_string()))?;
        }
        Ok(())
    }

    /// Runs one step with retries and failpoints, marking it running (with `owed_done`, the
    /// previous step's mark, if still owed). Returns whether the step wrote its own checkpoint;
    /// if not, its `done` mark is owed.
    async fn run_one(
        &self,
        op: &Operation,
        idx: i64,
        name: &str,
        mut owed_done: Option<i64>,
        progress: &dyn Progress,
    ) -> std::result::Result<bool, StepError> {
        if self.failpoints.is_set(name, Point::Error) {
            return Err(StepError::permanent(format!("failpoint {name}=error")));
        }
        self.failpoints.crash_if_set(name, Point::Before);
        let mut attempt = 1;
        let checkpointed = loop {
            let tenant = self
                .catalog
                .start_step(op.id, idx, owed_done.take(), op.tenant_id)
                .await?;
            match self.run_step(op, idx, name, tenant, progress).await {
                Ok(checkpointed) => break checkpointed,
                Err(e) if e.transient && attempt < MAX_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e.message, "transient failure; retrying");
                    metrics::counter!("tenantry_step_retries_total", "step" => name.to_owned())
                        .increment(1);
                    progress.step_retrying(name, attempt, &e.message);
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.failpoints.crash_if_set(name, Point::After);
        Ok(checkpointed)
    }

    /// Undoes the done steps in reverse order, then records the failure on the tenant. Returns
    /// the error that describes the failed operation.
    async fn roll_back(&self, op: &Operation) -> Result<OrchestratorError> {
        for step in op.steps.iter().rev().filter(|s| s.state == StepState::Done) {
            let mut attempt = 1;
            loop {
                match self.undo_step(op, &step.name).await {
                    Ok(()) => break,
                    Err(e) if e.transient && attempt < MAX_ATTEMPTS => {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                    Err(e) => {
                        // The rollback stays resumable: the operation is still rolling back.
                        return Ok(OrchestratorError::OperationFailed {
                            operation: op.id,
                            step: step.name.clone(),
                            error: format!(
                                "undo failed, run `tenantry ops resume {}` once the cause is fixed: {}",
                                op.id, e.message
                            ),
                        });
                    }
                }
            }
            self.catalog
                .set_step_state(op.id, step.idx, StepState::Undone, None)
                .await?;
            tracing::info!(step = %step.name, "step undone");
        }
        let failed = op.steps.iter().find(|s| s.state == StepState::Failed);
        let step = failed.map(|s| s.name.clone()).unwrap_or_default();
        let error = failed
            .and_then(|s| s.last_error.clone())
            .or_else(|| op.error.clone())
            .unwrap_or_default();
        let tenant = self.catalog.tenant(op.tenant_id).await?;
        if op.kind.is_infrastructure() {
            // The tenant itself is fine: its infrastructure record carries the failure.
            self.fail_infrastructure(op, &step, &error).await?;
        } else if op.kind == OperationKind::Move {
            // The tenant is fine too: it lives where it did.
            self.move_failed(op, &step, &error).await?;
        } else if tenant.state.can_become(TenantState::Failed) {
            let failure = Failure {
                operation: op.id,
                step: step.clone(),
                error: error.clone(),
            };
            let mut payload = crate::steps::payload(&tenant, op);
            payload["step"] = step.clone().into();
            payload["error"] = error.clone().into();
            let update = TenantUpdate {
                failure: Some(Some(failure)),
                space: op
                    .steps
                    .iter()
                    .any(|s| s.name == "create_space")
                    .then_some(None),
                ..TenantUpdate::default()
            };
            let cause = Cause {
                details: serde_json::json!({ "operation": op.id, "step": step, "error": error, "rolled_back": true }),
                ..self.cause_of(op, format!("{} rollback", op.kind))
            };
            self.catalog
                .transition(
                    tenant.id,
                    TenantState::Failed,
                    cause,
                    vec![NewEvent {
                        event_type: EventType::TenantFailed,
                        payload,
                    }],
                    update,
                    None,
                )
                .await?;
        }
        self.catalog
            .set_operation_state(
                op.id,
                OperationState::Failed,
                Some(format!("{step}: {error}")),
            )
            .await?;
        tracing::warn!(%step, %error, "operation failed and was rolled back");
        Ok(OrchestratorError::OperationFailed {
            operation: op.id,
            step,
            error,
        })
    }

    /// Runs operation `id` here, or — when another worker (a `tenantry serve`) took it first —
    /// follows it until it ends. Either way the result is the operation's outcome.
    pub async fn run_or_follow(&self, id: Uuid, progress: &dyn Progress) -> Result<Operation> {
        match self.run(id, progress).await {
            Err(OrchestratorError::LeaseHeld(_)) => loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let op = self.catalog.operation(id).await?;
                match op.state {
                    OperationState::Succeeded => return Ok(op),
                    OperationState::Failed => {
                        let failed = op.steps.iter().find(|s| s.state == StepState::Failed);
                        return Err(OrchestratorError::OperationFailed {
                            operation: id,
                            step: failed.map(|s| s.name.clone()).unwrap_or_default(),
                            error: op.error.clone().unwrap_or_default(),
                        });
                    }
                    _ => {}
                }
            },
            other => other,
        }
    }

    /// Takes the oldest operation no live worker holds and runs it. `None` when there is none.
    /// Several workers (processes) can call this at once: each operation goes to one of them.
    pub async fn work_once(
        &self,
        progress: &dyn Progress,
    ) -> Result<Option<(Uuid, Result<Operation>)>> {
        let until = chrono::Utc::now() + self.lease;
        let Some(op) = self
            .catalog
            .claim_next_operation(&self.worker, until)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((op.id, self.run(op.id, progress).await)))
    }

    /// Open operations (pending, running, rolling back), oldest first.
    pub async fn open_operations(&self) -> Result<Vec<Operation>> {
        let mut open: Vec<Operation> = self
            .catalog
            .operations(None, i64::MAX)
            .await?
            .into_iter()
            .filter(|op| op.state.is_open())
            .collect();
        open.sort_by_key(|op| op.created_at);
        Ok(open)
    }

    /// Continues an interrupted operation. Its lease is taken over at once when it is free,
    /// expired, or held by a dead worker of this host. With `wait`, a lease held by a worker
    /// that may be alive is waited for until it expires — at most one lease period, since a
    /// live worker keeps renewing it and finishes the operation itself.
    pub async fn resume(&self, id: Uuid, progress: &dyn Progress, wait: bool) -> Result<Operation> {
        let outcome = self.run(id, progress).await;
        if !(wait && matches!(outcome, Err(OrchestratorError::LeaseHeld(_)))) {
            return outcome;
        }
        let Some(expiry) = self.catalog.operation(id).await?.lease_expires_at else {
            return self.run(id, progress).await;
        };
        let left = (expiry - chrono::Utc::now()).to_std().unwrap_or_default();
        tracing::info!(operation = %id, wait_ms = left.as_millis() as u64, "waiting for another worker's lease to expire");
        tokio::time::sleep(left.min(self.lease) + Duration::from_millis(50)).await;
        self.run(id, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= MAX_BACKOFF.mul_f64(1.5), "{attempt}: {d:?}");
            assert!(d >= BASE_BACKOFF.mul_f64(0.5), "{attempt}: {d:?}");
        }
    }
}
