//! `tenantry placement recommend [--refresh]`: the tenants that outgrew their isolation by the
//! configuration's growth thresholds, and the move each is advised (`tenantry tenant move`).

use crate::backend;
use crate::cli::{Cli, PlacementCommand};
use crate::output::{emit, table};
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &PlacementCommand) -> Result<()> {
    let PlacementCommand::Recommend { refresh } = cmd;
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
