//! `tenantry pool …`: the warm pool for cold onboarding — databases created and migrated ahead
//! of time, so that provisioning a dedicated tenant only has to claim one.

use crate::backend;
use crate::cli::{Cli, PoolCommand};
use crate::output::{emit, table};
use crate::progress::counter_bar;
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &PoolCommand) -> Result<()> {
    let b = backend::open(cli).await?;
    match cmd {
        PoolCommand::Fill { shard, count } => {
            let bar = counter_bar(&format!("filling {shard}"), "databases");
            let filled = b.fill_pool(shard, *count, &bar).await;
            bar.finish();
            let filled = filled?;
            emit(cli.output, &filled, |f| {
                println!("Created {} database(s) in the pool of {shard}.", f.created);
            });
        }
        PoolCommand::Status => {
            let status = b.pool_status().await?;
            emit(cli.output, &status, |rows| {
                let mut t = table(&["shard", "available", "claimed"]);
                for r in rows {
                    t.add_row(vec![
                        r.shard.clone(),
                        r.available.to_string(),
                        r.claimed.to_string(),
                    ]);
                }
                println!("{t}");
            });
        }
    }
    Ok(())
}
