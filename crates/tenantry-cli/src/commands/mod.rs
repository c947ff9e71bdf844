//! One module per command group.

mod data_plane;
mod events;
mod init;
mod listing;
mod migrate;
mod ops;
mod placement;
mod pool;
mod reconcile;
mod serve;
mod shard;
mod storefront;
mod tenant;
mod token;

use crate::backend::local_only;
use crate::cli::{Cli, Command};
use anyhow::Result;

pub use migrate::describe_space;

pub async fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Init(args) => {
            local_only(cli, "init")?;
            init::run(cli, args).await
        }
        Command::Tenant(cmd) => tenant::run(cli, cmd).await,
        Command::Events(cmd) => events::run(cli, cmd).await,
        Command::Ops(cmd) => ops::run(cli, cmd).await,
        Command::Plan(_) => listing::plans(cli).await,
        Command::Region(_) => listing::regions(cli).await,
        Command::Shard(cmd) => shard::run(cli, cmd).await,
        Command::Pool(cmd) => pool::run(cli, cmd).await,
        Command::Migrate(args) => migrate::run(cli, args).await,
        Command::Placement(cmd) => placement::run(cli, cmd).await,
        Command::Reconcile(args) => {
            local_only(cli, "reconcile")?;
            reconcile::run(cli, args).await
        }
        Command::Serve(args) => {
            local_only(cli, "serve")?;
            serve::run(cli, args).await
        }
        Command::Token(cmd) => token::run(cli, cmd).await,
        Command::DataPlane(args) => {
            local_only(cli, "data-plane")?;
            data_plane::run(cli, args).await
        }
        Command::Storefront(args) => {
            local_only(cli, "storefront")?;
            storefront::run(cli, args).await
        }
        Command::Openapi => {
            local_only(cli, "openapi")?;
            println!("{}", tenantry_api::openapi::document());
            Ok(())
        }
    }
}
