//! `tenantry events list`.

use crate::cli::{Cli, EventsCommand};
use crate::context::open;
use crate::output::{emit, table};
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &EventsCommand) -> Result<()> {
    let orch = open(cli).await?;
    match cmd {
        EventsCommand::Tail { tenant, after } => {
            let tenant_id = match tenant {
                Some(slug) => Some(orch.catalog().tenant_by_slug(slug).await?.id),
                None => None,
            };
            let mut cursor = match after {
                Some(a) => *a,
                None => orch
                    .catalog()
                    .events(tenant_id, 0, i64::MAX)
                    .await?
                    .last()
                    .map_or(0, |e| e.seq),
            };
            loop {
                for e in orch.catalog().events(tenant_id, cursor, 500).await? {
                    cursor = e.seq;
                    match cli.output {
                        crate::cli::Output::Json => println!("{}", serde_json::to_string(&e)?),
                        crate::cli::Output::Table => println!(
                            "{} {} {} {}",
                            e.seq,
                            e.created_at.to_rfc3339(),
                            e.event_type,
                            e.payload["slug"].as_str().unwrap_or_default()
                        ),
                    }
                }
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
            }
        }
        EventsCommand::DeadLetters => {
            let letters = orch.catalog().dead_letters().await?;
            emit(cli.output, &letters, |letters| {
                let mut t = table(&["sink", "seq", "attempts", "at", "error"]);
                for d in letters {
                    t.add_row(vec![
                        d.sink.clone(),
                        d.seq.to_string(),
                        d.attempts.to_string(),
                        d.at.to_rfc3339(),
                        d.error.clone(),
                    ]);
                }
                println!("{t}");
            });
        }
        EventsCommand::List {
            tenant,
            after,
            limit,
        } => {
            let tenant_id = match tenant {
                Some(slug) => Some(orch.catalog().tenant_by_slug(slug).await?.id),
                None => None,
            };
            let events = orch.catalog().events(tenant_id, *after, *limit).await?;
            emit(cli.output, &events, |events| {
                let mut t = table(&["seq", "type", "tenant", "at", "id"]);
                for e in events {
                    t.add_row(vec![
                        e.seq.to_string(),
                        e.event_type.to_string(),
                        e.payload["slug"].as_str().unwrap_or_default().to_owned(),
                        e.created_at.to_rfc3339(),
                        e.id.to_string(),
                    ]);
                }
                println!("{t}");
            });
        }
    }
    Ok(())
}
