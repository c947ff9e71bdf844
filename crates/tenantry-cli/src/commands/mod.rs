//! One module per command group.

mod events;
mod init;
mod listing;
mod ops;
mod serve;
mod tenant;
mod token;

use crate::cli::{Cli, Command};
use anyhow::Result;

pub async fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Init(args) => init::run(cli, args),
        Command::Tenant(cmd) => tenant::run(cli, cmd).await,
        Command::Events(cmd) => events::run(cli, cmd).await,
        Command::Ops(cmd) => ops::run(cli, cmd).await,
        Command::Plan(_) => listing::plans(cli),
        Command::Region(_) => listing::regions(cli).await,
        Command::Shard(_) => listing::shards(cli).await,
        Command::Serve(args) => serve::run(cli, args).await,
        Command::Token(cmd) => token::run(cli, cmd).await,
    }
}
