//! `tenantry serve`: the worker loop. It exists so that operations queued by other processes,
//! and operations whose worker died, are finished without anyone running `ops resume`.

use crate::cli::{Cli, ServeArgs};
use crate::context::open;
use anyhow::Result;
use std::time::Duration;
use tenantry_orchestrator::NoProgress;

pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let orch = open(cli).await?;
    let interval = Duration::from_secs(args.interval.max(1));
    tracing::info!(?interval, "worker started");
    eprintln!("tenantry worker running; Ctrl-C to stop");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(interval) => {
                match orch.open_operations().await {
                    Ok(open) => {
                        for op in open {
                            match orch.resume(op.id, &NoProgress, false).await {
                                Ok(op) => tracing::info!(operation = %op.id, state = %op.state, "operation finished"),
                                Err(tenantry_orchestrator::OrchestratorError::LeaseHeld(_)) => {}
                                Err(e) => tracing::warn!(operation = %op.id, error = %e, "operation did not succeed"),
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not look for work"),
                }
            }
        }
    }
    tracing::info!("worker stopped");
    Ok(())
}
