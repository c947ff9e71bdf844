//! `tenantry token …`: API tokens. A token is printed once, at creation; the catalog keeps only
//! its hash.

use crate::backend;
use crate::cli::{Cli, TokenCommand};
use crate::output::{emit, or_dash, table};
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &TokenCommand) -> Result<()> {
    let b = backend::open(cli).await?;
    match cmd {
        TokenCommand::Create { scope, name } => {
            let created = b.create_token(scope, name.clone()).await?;
            emit(cli.output, &created, |c| {
                eprintln!("Token {} ({}) — shown once, keep it safe:", c.name, c.scope);
                println!("{}", c.token);
            });
        }
        TokenCommand::Revoke { name } => {
            let token = b.revoke_token(name).await?;
            emit(cli.output, &token, |t| {
                println!("Token {} is revoked.", t.name)
            });
        }
        TokenCommand::List => {
            let tokens = b.tokens().await?;
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
