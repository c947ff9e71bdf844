//! `tenantry events …`: the outbox, read or followed (locally or through a server, by polling
//! the cursor either way).

use crate::backend;
use crate::cli::{Cli, EventsCommand, Output};
use crate::output::{emit, table};
use anyhow::Result;
use std::time::Duration;

/// How often `events tail` looks for new events.
const TAIL_POLL: Duration = Duration::from_millis(500);

pub async fn run(cli: &Cli, cmd: &EventsCommand) -> Result<()> {
    let b = backend::open(cli).await?;
    match cmd {
        EventsCommand::Tail { tenant, after } => {
            let tenant = tenant.as_deref();
            let mut cursor = match after {
                Some(a) => *a,
                None => b.last_event(tenant).await?,
            };
            loop {
                for e in b.events(tenant, cursor, 500).await? {
                    cursor = e.seq;
                    match cli.output {
                        Output::Json => println!("{}", serde_json::to_string(&e)?),
                        Output::Table => println!(
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
                    _ = tokio::time::sleep(TAIL_POLL) => {}
                }
            }
        }
        EventsCommand::DeadLetters => {
            let letters = b.dead_letters().await?;
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
            let events = b.events(tenant.as_deref(), *after, *limit).await?;
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
