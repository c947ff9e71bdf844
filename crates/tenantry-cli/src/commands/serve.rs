//! `tenantry serve`: the REST API, the worker that runs operations, and the relay that delivers
//! events, in one process until Ctrl-C or SIGTERM. Several `serve` processes may share one
//! PostgreSQL catalog: each operation is claimed by exactly one of them.

use crate::cli::{Cli, ServeArgs};
use crate::context::open;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tenantry_api::AppState;
use tenantry_api::tokens::CatalogTokens;
use tenantry_core::TenantId;
use tenantry_events::relay::Relay;
use tenantry_orchestrator::{NoProgress, Orchestrator, OrchestratorError};
use tokio::sync::{Notify, watch};

/// Where `tenantry serve` keeps the last tenant reconcile pass for the API.
type Reconciliation =
    Arc<tokio::sync::RwLock<Option<tenantry_api_types::responses::Reconciliation>>>;

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs queued and interrupted operations until stopped: at once when woken, else every
/// `interval`.
async fn worker(
    orch: Arc<Orchestrator>,
    work: Arc<Notify>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    loop {
        loop {
            match orch.work_once(&NoProgress).await {
                Ok(Some((id, Ok(op)))) => {
                    tracing::info!(operation = %id, state = %op.state, "operation finished")
                }
                Ok(Some((_, Err(OrchestratorError::LeaseHeld(_))))) => {}
                Ok(Some((id, Err(e)))) => {
                    tracing::warn!(operation = %id, error = %e, "operation did not succeed")
                }
                Ok(None) => {
                    take_over_dead_workers(&orch).await;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not look for work");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
        }
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            _ = work.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Runs `pass` every `interval` (the first one interval after the start) until stopped.
async fn every<F, Pass>(interval: Duration, stop: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Pass,
    Pass: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        pass().await;
    }
}

/// Looks for infrastructure drift; the repairs it queues are run by the worker.
async fn reconcile_infrastructure(orch: Arc<Orchestrator>) {
    match orch.reconcile_infrastructure(false).await {
        Ok(findings) => {
            let drifted = findings.iter().filter(|f| f.drifted).count();
            tracing::info!(checked = findings.len(), drifted, "reconcile pass");
        }
        Err(e) => tracing::warn!(error = %e, "reconcile pass failed"),
    }
}

/// Compares tenants' declared state with what it observes — every tenant, or the next
/// `per_pass` after `cursor` — repairs the difference, and keeps the report for
/// `/api/v1/reconciliation`; then keeps the warm pools' next databases warm.
async fn reconcile_tenants(
    orch: Arc<Orchestrator>,
    report: Reconciliation,
    per_pass: usize,
    cursor: Arc<std::sync::Mutex<Option<TenantId>>>,
) {
    let after = *cursor.lock().expect("cursor lock");
    let pass = match per_pass {
        0 => orch.reconcile_tenants(false).await,
        n => orch.reconcile_slice(false, after, n).await,
    };
    match pass {
        Ok(pass) => {
            *cursor.lock().expect("cursor lock") = pass.last;
            if !pass.drifts.is_empty() {
                tracing::info!(
                    tenants = pass.tenants,
                    drifts = pass.drifts.len(),
                    "tenant reconcile pass"
                );
            }
            *report.write().await = Some(tenantry_api::views::reconciliation(&pass));
        }
        Err(e) => tracing::warn!(error = %e, "tenant reconcile pass failed"),
    }
    // Warm connections are this process's own: a restarted server warms the pools again.
    if let Err(e) = orch.shard_upkeep().await {
        tracing::warn!(error = %e, "shard connection upkeep failed");
    }
}

/// Starts the moves `[placement.auto_move]` allows (collecting every tenant's statistics
/// first); the worker runs them.
async fn auto_move(orch: Arc<Orchestrator>, work: Arc<Notify>) {
    match orch.start_auto_moves(true).await {
        Ok(decisions) => {
            let started = decisions.iter().filter(|d| d.started.is_some()).count();
            tracing::info!(
                past_a_threshold = decisions.len(),
                started,
                "auto-move pass"
            );
            if started > 0 {
                work.notify_one();
            }
        }
        Err(e) => tracing::warn!(error = %e, "auto-move pass failed"),
    }
}

/// Finishes operations whose worker on this host died, without waiting for their leases.
async fn take_over_dead_workers(orch: &Orchestrator) {
    let Ok(open) = orch.open_operations().await else {
        return;
    };
    for op in open {
        let dead = op
            .lease_owner
            .as_deref()
            .is_some_and(tenantry_orchestrator::worker::holder_is_dead);
        if dead {
            match orch.resume(op.id, &NoProgress, false).await {
                Ok(op) => {
                    tracing::info!(operation = %op.id, state = %op.state, "finished a dead worker's operation")
                }
                Err(e) => {
                    tracing::warn!(operation = %op.id, error = %e, "could not finish a dead worker's operation")
                }
            }
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let orch = Arc::new(open(cli).await?);
    let config = orch.config().clone();
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let prometheus = if config.server.metrics {
        Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .context("installing the metrics recorder")?,
        )
    } else {
        None
    };
    let sinks = tenantry_events::sinks_from_config(&config.events)
        .await
        .map_err(|e| anyhow::anyhow!("configuring event sinks: {e}"))?;
    let sink_names: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
    let work = Arc::new(Notify::new());
    let state = AppState {
        orch: orch.clone(),
        tokens: Arc::new(CatalogTokens(orch.catalog().clone())),
        work: work.clone(),
        sinks: Some(Arc::new(sink_names)),
        reconciliation: Default::default(),
    };
    let reconciliation = state.reconciliation.clone();
    let app = tenantry_api::router_with_metrics(state, prometheus);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_secs(args.interval.max(1));
    let worker = tokio::spawn(worker(
        orch.clone(),
        work.clone(),
        interval,
        stop_rx.clone(),
    ));
    let reconciler = config.infrastructure.as_ref().map(|infra| {
        let (orch, interval) = (orch.clone(), infra.reconcile_interval_secs.max(1));
        tokio::spawn(every(
            Duration::from_secs(interval),
            stop_rx.clone(),
            move || reconcile_infrastructure(orch.clone()),
        ))
    });
    let tenant_reconciler = (config.reconciler.interval_secs > 0).then(|| {
        let (orch, cursor) = (orch.clone(), Arc::default());
        let per_pass = config.reconciler.tenants_per_pass;
        tokio::spawn(every(
            Duration::from_secs(config.reconciler.interval_secs),
            stop_rx.clone(),
            move || {
                reconcile_tenants(
                    orch.clone(),
                    reconciliation.clone(),
                    per_pass,
                    Arc::clone(&cursor),
                )
            },
        ))
    });
    let auto_moves = config.placement.auto_move.as_ref().map(|auto| {
        let (orch, work) = (orch.clone(), work.clone());
        tokio::spawn(every(
            Duration::from_secs(auto.interval_secs.max(1)),
            stop_rx.clone(),
            move || auto_move(orch.clone(), work.clone()),
        ))
    });
    let relay = Relay::new(orch.catalog().clone(), sinks);
    let relay_interval = Duration::from_millis(config.events.relay_interval_ms.max(50));
    let relay = tokio::spawn({
        let stop = stop_rx.clone();
        async move { relay.run(relay_interval, stopped(stop)).await }
    });
    eprintln!(
        "tenantry serving http://{addr}/api/v1 (worker and event relay running); Ctrl-C to stop"
    );
    tracing::info!(%addr, "serving");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(worker, relay);
    for task in [reconciler, tenant_reconciler, auto_moves]
        .into_iter()
        .flatten()
    {
        let _ = task.await;
    }
    tracing::info!("stopped");
    served.context("serving HTTP")
}
