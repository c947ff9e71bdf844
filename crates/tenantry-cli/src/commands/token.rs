//! `tenantry token …`: API tokens. A token is printed once, at creation; the catalog keeps only
//! its hash.

use crate::cli::{Cli, TokenCommand};
use crate::context::open;
use crate::exit::BadInput;
use crate::output::{emit, or_dash, table};
use anyhow::Result;
use tenantry_api::Scope;

pub async fn run(cli: &Cli, cmd: &TokenCommand) -> Result<()> {
    let orch = open(cli).await?;
    let catalog = orch.catalog();
    match cmd {
        TokenCommand::Create { scope, name } => {
            let scope: Scope = scope.parse().map_err(BadInput)?;
            let name = name.clone().unwrap_or_else(|| {
                format!(
                    "{scope}-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            });
            let (token, plain) =
                tenantry_api::tokens::issue(catalog.as_ref(), &name, scope).await?;
            emit(
                cli.output,
                &serde_json::json!({ "token": plain, "name": token.name, "scope": token.scope }),
                |_| {
                    eprintln!(
                        "Token {} ({}) — shown once, keep it safe:",
                        token.name, token.scope
                    );
                    println!("{plain}");
                },
            );
        }
        TokenCommand::Revoke { name } => {
            let token = catalog.revoke_token(name).await?;
            emit(cli.output, &token, |t| {
                println!("Token {} is revoked.", t.name)
            });
        }
        TokenCommand::List => {
            let tokens = catalog.tokens().await?;
            emit(cli.output, &tokens, |tokens| {
                let mut t = table(&["name", "scope", "created", "revoked"]);
                for x in tokens {
                    t.add_row(vec![
                        x.name.clone(),
                        x.scope.clone(),
                        x.created_at.to_rfc3339(),
                        or_dash(x.revoked_at.map(|r| r.to_rfc3339())),
                    ]);
                }
                println!("{t}");
            });
        }
    }
    Ok(())
}
