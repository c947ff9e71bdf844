//! `tenantry placement recommend [--refresh]`: the tenants that outgrew their isolation by the
//! configuration's growth thresholds, and the move each is advised (`tenantry tenant move`).

use crate::cli::{Cli, PlacementCommand};
use crate::context::open;
use crate::output::{emit, table};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    slug: String,
    isolation: String,
    advised: String,
    reason: String,
    rows: i64,
    size_bytes: i64,
    command: String,
}

pub async fn run(cli: &Cli, cmd: &PlacementCommand) -> Result<()> {
    let PlacementCommand::Recommend { refresh } = cmd;
    let orch = open(cli).await?;
    let rows: Vec<Row> = orch
        .placement_advice(*refresh)
        .await?
        .into_iter()
        .map(|a| Row {
            command: format!(
                "tenantry tenant move {} --to {}",
                a.tenant.slug, a.recommendation.to
            ),
            slug: a.tenant.slug,
            isolation: a.tenant.isolation.to_string(),
            advised: a.recommendation.to.to_string(),
            reason: a.recommendation.reason,
            rows: a.stats.rows.values().sum(),
            size_bytes: a.stats.size_bytes,
        })
        .collect();
    emit(cli.output, &rows, |rows| {
        if rows.is_empty() {
            println!("Every tenant is where its thresholds say it belongs.");
            return;
        }
        let mut t = table(&["tenant", "isolation", "advised", "because", "command"]);
        for r in rows {
            t.add_row(vec![
                r.slug.clone(),
                r.isolation.clone(),
                r.advised.clone(),
                r.reason.clone(),
                r.command.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
