//! `tenantry reconcile [--dry-run]`: one reconcile pass over tenants' infrastructure, then the
//! repairs it queued, run to their end (what `tenantry serve` does on its interval).

use crate::cli::{Cli, ReconcileArgs};
use crate::context::open;
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    slug: String,
    drifted: bool,
    repair: Option<uuid::Uuid>,
    /// The repair's end state: `succeeded` or `failed`.
    outcome: Option<String>,
}

pub async fn run(cli: &Cli, args: &ReconcileArgs) -> Result<()> {
    let orch = open(cli).await?;
    let findings = orch.reconcile_infrastructure(args.dry_run).await?;
    let mut rows = Vec::with_capacity(findings.len());
    let mut failed = Vec::new();
    for finding in findings {
        let outcome = match finding.repair {
            Some(id) => {
                let progress = StepProgress::new(format!("repairing {}", finding.slug), 7);
                let result = orch.run_or_follow(id, &progress).await;
                progress.finish();
                let state = match result {
                    Ok(op) => op.state.to_string(),
                    Err(e) => {
                        failed.push(format!("{}: {e}", finding.slug));
                        "failed".to_owned()
                    }
                };
                Some(state)
            }
            None => None,
        };
        rows.push(Row {
            slug: finding.slug,
            drifted: finding.drifted,
            repair: finding.repair,
            outcome,
        });
    }
    emit(cli.output, &rows, |rows| {
        let mut t = table(&["tenant", "drifted", "repair", "outcome"]);
        for r in rows {
            t.add_row(vec![
                r.slug.clone(),
                if r.drifted { "yes" } else { "no" }.to_owned(),
                or_dash(r.repair),
                or_dash(r.outcome.clone()),
            ]);
        }
        println!("{t}");
        let drifted = rows.iter().filter(|r| r.drifted).count();
        println!("{} tenant(s) checked, {drifted} drifted", rows.len());
    });
    if !failed.is_empty() {
        anyhow::bail!("repairs failed: {}", failed.join("; "));
    }
    Ok(())
}
