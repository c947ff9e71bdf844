//! `tenantry placement recommend [--refresh]`: the tenants that outgrew their isolation by the
//! configuration's growth thresholds, and the move each is advised (`tenantry tenant move`).
//! `tenantry placement auto-move [--refresh]`: the moves `[placement.auto_move]` allows,
//! started and run here once.

use crate::backend;
use crate::cli::{Cli, PlacementCommand};
use crate::output::{emit, table};
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &PlacementCommand) -> Result<()> {
    let refresh = match cmd {
        PlacementCommand::Recommend { refresh } => refresh,
        PlacementCommand::AutoMove { refresh } => return auto_move(cli, *refresh).await,
    };
    let b = backend::open(cli).await?;
    let advice = b.placement_advice(*refresh).await?;
    emit(cli.output, &advice, |advice| {
        if advice.is_empty() {
            println!("Every tenant is where its thresholds say it belongs.");
            return;
        }
        let mut t = table(&["tenant", "isolation", "advised", "because", "command"]);
        for a in advice {
            t.add_row(vec![
                a.slug.clone(),
                a.isolation.clone(),
                a.advised.clone(),
                a.reason.clone(),
                a.command.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

async fn auto_move(cli: &Cli, refresh: bool) -> Result<()> {
    backend::local_only(cli, "placement auto-move")?;
    let orch = crate::context::open(cli).await?;
    if orch.config().placement.auto_move.is_none() {
        return Err(crate::exit::BadInput(
            "[placement.auto_move] is not set in tenantry.toml: moves are only advised (`tenantry placement recommend`); the file has a commented example".into(),
        )
        .into());
    }
    let decisions = orch.start_auto_moves(refresh).await?;
    let mut outcomes = Vec::with_capacity(decisions.len());
    for d in &decisions {
        let outcome = match (d.started, &d.skipped) {
            (Some(op), _) => match orch.run(op, &tenantry_orchestrator::NoProgress).await {
                Ok(op) => format!(
                    "moved ({}; `tenantry tenant move {} --complete` ends it)",
                    op.state, d.slug
                ),
                Err(e) => format!("move failed: {e}"),
            },
            (None, skipped) => format!("not moved: {}", skipped.as_deref().unwrap_or("-")),
        };
        outcomes.push(serde_json::json!({
            "slug": d.slug, "to": d.to, "because": d.reason, "operation": d.started, "outcome": outcome,
        }));
    }
    emit(cli.output, &outcomes, |outcomes| {
        if outcomes.is_empty() {
            println!("No tenant is past a growth threshold.");
            return;
        }
        let mut t = table(&["tenant", "to", "because", "outcome"]);
        for o in outcomes {
            let text = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            t.add_row(vec![
                text("slug"),
                text("to"),
                text("because"),
                text("outcome"),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
