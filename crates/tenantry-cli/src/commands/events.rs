//! `tenantry events list`.

use crate::cli::{Cli, EventsCommand};
use crate::context::open;
use crate::output::{emit, table};
use anyhow::Result;

pub async fn run(cli: &Cli, cmd: &EventsCommand) -> Result<()> {
    let orch = open(cli).await?;
    match cmd {
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
