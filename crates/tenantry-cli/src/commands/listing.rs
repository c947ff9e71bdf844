//! `tenantry plan list`, `region list`, `shard list`.

use crate::cli::Cli;
use crate::context::{load_config, open};
use crate::output::{emit, or_dash, table};
use anyhow::Result;
use serde_json::json;

pub fn plans(cli: &Cli) -> Result<()> {
    let config = load_config(cli)?;
    emit(cli.output, &config.plans, |plans| {
        let mut t = table(&[
            "plan",
            "isolation",
            "compute",
            "storage quota",
            "description",
        ]);
        for (name, p) in plans {
            t.add_row(vec![
                name.clone(),
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
    let orch = open(cli).await?;
    let config = orch.config();
    let shards = orch.catalog().shards().await?;
    let regions: Vec<_> = config
        .regions
        .keys()
        .map(|name| {
            let own: Vec<_> = shards.iter().filter(|s| &s.region == name).collect();
            json!({
                "name": name,
                "shared_shard": config.shared_shard(name).map(|s| &s.name),
                "shards": own.iter().map(|s| &s.name).collect::<Vec<_>>(),
                "room_left": own.iter().filter(|s| s.state == tenantry_core::shard::ShardState::Active)
                    .map(|s| s.capacity.saturating_sub(s.used)).sum::<u32>(),
            })
        })
        .collect();
    emit(cli.output, &regions, |regions| {
        let mut t = table(&["region", "shared database on", "shards", "room left"]);
        for r in regions {
            t.add_row(vec![
                r["name"].as_str().unwrap_or_default().to_owned(),
                or_dash(r["shared_shard"].as_str()),
                r["shards"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                r["room_left"].to_string(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
