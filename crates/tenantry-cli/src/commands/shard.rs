//! `tenantry shard …`: the servers tenant spaces live on.

use crate::cli::{Cli, ShardAddArgs, ShardCommand};
use crate::context::open;
use crate::output::{emit, or_dash, table};
use anyhow::Result;
use serde::Serialize;
use tenantry_catalog::model::{Shard, TenantFilter};
use tenantry_core::config::ShardConfig;
use tenantry_core::shard::ShardState;
use tenantry_orchestrator::Orchestrator;

/// A shard with what it holds.
#[derive(Serialize)]
struct ShardView {
    #[serde(flatten)]
    shard: Shard,
    /// Live tenants whose space is on the shard, of any isolation.
    tenants: usize,
    room_left: u32,
}

pub async fn run(cli: &Cli, cmd: &ShardCommand) -> Result<()> {
    let orch = open(cli).await?;
    match cmd {
        ShardCommand::List => list(cli, &orch).await,
        ShardCommand::Add(args) => {
            let shard = orch.add_shard(to_config(args)).await?;
            print_one(cli, &orch, shard).await
        }
        ShardCommand::Drain { name } => {
            let shard = orch.set_shard_state(name, ShardState::Draining).await?;
            print_one(cli, &orch, shard).await
        }
        ShardCommand::Activate { name } => {
            let shard = orch.set_shard_state(name, ShardState::Active).await?;
            print_one(cli, &orch, shard).await
        }
    }
}

fn to_config(args: &ShardAddArgs) -> ShardConfig {
    ShardConfig {
        name: args.name.clone(),
        region: args.region.clone(),
        engine: args.engine,
        url: args.url.clone(),
        directory: args
            .directory
            .as_ref()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())),
        capacity: args.capacity,
        state: ShardState::Active,
    }
}

async fn views(orch: &Orchestrator) -> Result<Vec<ShardView>> {
    let tenants = orch.catalog().tenants(&TenantFilter::default()).await?;
    Ok(orch
        .catalog()
        .shards()
        .await?
        .into_iter()
        .map(|shard| ShardView {
            tenants: tenants.iter().filter(|t| t.shard == shard.name).count(),
            room_left: shard.capacity.saturating_sub(shard.used),
            shard,
        })
        .collect())
}

async fn print_one(cli: &Cli, orch: &Orchestrator, shard: Shard) -> Result<()> {
    let view = views(orch)
        .await?
        .into_iter()
        .find(|v| v.shard.name == shard.name);
    emit(cli.output, &view, |v| {
        if let Some(v) = v {
            println!(
                "shard {} ({}, {}) is {}: {} tenant(s), {} of {} databases, {} left",
                v.shard.name,
                v.shard.region,
                v.shard.engine,
                v.shard.state,
                v.tenants,
                v.shard.used,
                v.shard.capacity,
                v.room_left
            );
        }
    });
    Ok(())
}

async fn list(cli: &Cli, orch: &Orchestrator) -> Result<()> {
    let views = views(orch).await?;
    emit(cli.output, &views, |views| {
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
        for v in views {
            let s = &v.shard;
            t.add_row(vec![
                s.name.clone(),
                s.region.clone(),
                s.engine.to_string(),
                s.state.to_string(),
                v.tenants.to_string(),
                s.used.to_string(),
                s.capacity.to_string(),
                v.room_left.to_string(),
                // A URL may carry a password: show only its host part.
                or_dash(
                    s.directory
                        .clone()
                        .or_else(|| s.url.as_deref().map(redact_url)),
                ),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

/// `postgres://user:secret@host:5432/db` → `postgres://user@host:5432/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_cut_from_urls() {
        assert_eq!(
            redact_url("postgres://admin:hunter2@db.example:5432/postgres"),
            "postgres://admin@db.example:5432/postgres"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
    }
}
