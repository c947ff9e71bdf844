//! `tenantry shard …`: the servers tenant spaces live on.

use crate::backend;
use crate::cli::{Cli, ShardAddArgs, ShardCommand};
use crate::output::{emit, or_dash, table};
use anyhow::Result;
use tenantry_api_types::admin::AddShard;
use tenantry_api_types::responses::Shard;
use tenantry_core::shard::ShardState;

pub async fn run(cli: &Cli, cmd: &ShardCommand) -> Result<()> {
    let b = backend::open(cli).await?;
    let shard = match cmd {
        ShardCommand::List => return list(cli, b.shards().await?),
        ShardCommand::Add(args) => b.add_shard(to_request(args)).await?,
        ShardCommand::Drain { name } => b.set_shard_state(name, ShardState::Draining).await?,
        ShardCommand::Activate { name } => b.set_shard_state(name, ShardState::Active).await?,
    };
    emit(cli.output, &shard, |s| {
        println!(
            "shard {} ({}, {}) is {}: {} tenant(s), {} of {} databases, {} left",
            s.name, s.region, s.engine, s.state, s.tenants, s.used, s.capacity, s.room_left
        );
    });
    Ok(())
}

/// The directory is made absolute here, so that a server on this machine reads the one meant.
fn to_request(args: &ShardAddArgs) -> AddShard {
    AddShard {
        name: args.name.clone(),
        region: args.region.clone(),
        engine: args.engine,
        url: args.url.clone(),
        directory: args.directory.as_ref().map(|d| {
            std::path::absolute(d)
                .unwrap_or_else(|_| d.clone())
                .display()
                .to_string()
        }),
        capacity: args.capacity,
    }
}

fn list(cli: &Cli, shards: Vec<Shard>) -> Result<()> {
    emit(cli.output, &shards, |shards| {
        let mut t = table(&[
            "shard",
            "region",
            "engine",
            "state",
            "tenants",
            "databases",
            "capacity",
            "room left",
            "location",
        ]);
        for s in shards {
            t.add_row(vec![
                s.name.clone(),
                s.region.clone(),
                s.engine.to_string(),
                s.state.to_string(),
                s.tenants.to_string(),
                s.used.to_string(),
                s.capacity.to_string(),
                s.room_left.to_string(),
                or_dash(s.location.clone()),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}
