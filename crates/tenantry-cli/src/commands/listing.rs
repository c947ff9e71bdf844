//! `tenantry plan list`, `region list`.

use crate::backend;
use crate::cli::Cli;
use crate::output::{emit, or_dash, table};
use anyhow::Result;

pub async fn plans(cli: &Cli) -> Result<()> {
    let plans = backend::open(cli).await?.plans().await?;
    emit(cli.output, &plans, |plans| {
        let mut t = table(&[
            "plan",
            "isolation",
            "compute",
            "storage quota",
            "description",
        ]);
        for p in plans {
            t.add_row(vec![
                p.name.clone(),
                p.isolation.to_string(),
                p.compute.to_string(),
                format!("{} MiB", p.storage_quota_mb),
                p.description.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

pub async fn regions(cli: &Cli) -> Result<()> {
    let regions = backend::open(cli).await?.regions().await?;
    emit(cli.output, &regions, |regions| {
        let mut t = table(&["region", "shared database on", "shards", "room left"]);
        for r in regions {
            t.add_row(vec![
                r.name.clone(),
                or_dash(r.shared_shard.clone()),
                r.shards.join(", "),
                r.room_left.to_string(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
