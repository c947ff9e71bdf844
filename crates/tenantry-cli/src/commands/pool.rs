//! `tenantry pool …`: the warm pool for cold onboarding — databases created and migrated ahead
//! of time, so that provisioning a dedicated tenant only has to claim one.

use crate::cli::{Cli, PoolCommand};
use crate::context::open;
use crate::output::{emit, table};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub async fn run(cli: &Cli, cmd: &PoolCommand) -> Result<()> {
    let orch = open(cli).await?;
    match cmd {
        PoolCommand::Fill { shard, count } => {
            let bar = if std::io::stderr().is_terminal() {
                let bar = ProgressBar::new(u64::from(*count));
                bar.set_style(
                    ProgressStyle::with_template("filling {msg} [{bar:30}] {pos}/{len} ({eta})")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_message(shard.clone());
                bar
            } else {
                ProgressBar::hidden()
            };
            let created = orch
                .fill_pool(shard, *count, &|done| {
                    bar.set_position(u64::from(done));
                    if bar.is_hidden() {
                        eprintln!("pool {shard}: {done}/{count} databases ready");
                    }
                })
                .await;
            bar.finish_and_clear();
            let created = created?;
            let status = orch.catalog().pool_status().await?;
            emit(
                cli.output,
                &serde_json::json!({ "created": created, "pool": status }),
                |_| {
                    println!("Created {created} database(s) in the pool of {shard}.");
                },
            );
        }
        PoolCommand::Status => {
            let status = orch.catalog().pool_status().await?;
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
