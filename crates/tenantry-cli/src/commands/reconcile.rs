//! `tenantry reconcile [--dry-run]`: one reconcile pass, what `tenantry serve` does on its
//! interval. First every tenant's declared state against what it observes (space, storage,
//! licence, compute, leftovers of deleted tenants), repaired on the spot; then, where
//! `[infrastructure]` is configured, each tenant's Terraform plan, whose repairs are queued
//! updates run here to their end.

use crate::cli::{Cli, ReconcileArgs};
use crate::context::open;
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use serde::Serialize;
use tenantry_api_types::responses::Reconciliation;
use tenantry_orchestrator::Orchestrator;

#[derive(Serialize)]
struct InfraRow {
    slug: String,
    drifted: bool,
    repair: Option<uuid::Uuid>,
    /// The repair's end state: `succeeded` or `failed`.
    outcome: Option<String>,
}

#[derive(Serialize)]
struct Report {
    tenants: Reconciliation,
    /// Absent without `[infrastructure]`.
    infrastructure: Option<Vec<InfraRow>>,
}

pub async fn run(cli: &Cli, args: &ReconcileArgs) -> Result<()> {
    let orch = open(cli).await?;
    let pass = orch.reconcile_tenants(args.dry_run).await?;
    let tenants = tenantry_api::views::reconciliation(&pass);
    let mut failed: Vec<String> = tenants
        .drifts
        .iter()
        .filter(|d| d.outcome == "failed" || d.outcome == "reported")
        .map(|d| {
            format!(
                "{} ({}): {}",
                d.slug,
                d.kind,
                d.error.clone().unwrap_or_else(|| d.detail.clone())
            )
        })
        .collect();
    let infrastructure = if orch.config().infrastructure.is_some() {
        Some(reconcile_infrastructure(&orch, args.dry_run, &mut failed).await?)
    } else {
        None
    };
    let report = Report {
        tenants,
        infrastructure,
    };
    emit(cli.output, &report, |r| {
        let mut t = table(&["tenant", "drift", "detail", "repair", "outcome"]);
        for d in &r.tenants.drifts {
            t.add_row(vec![
                d.slug.clone(),
                d.kind.clone(),
                d.detail.clone(),
                d.repair.clone(),
                match &d.error {
                    Some(e) => format!("{}: {e}", d.outcome),
                    None => d.outcome.clone(),
                },
            ]);
        }
        if !r.tenants.drifts.is_empty() {
            println!("{t}");
        }
        println!(
            "{} tenant(s) checked, {} drift(s){}",
            r.tenants.tenants,
            r.tenants.drifts.len(),
            if r.tenants.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
        if let Some(rows) = r.infrastructure.as_ref().filter(|rows| !rows.is_empty()) {
            let mut t = table(&["tenant", "drifted", "repair", "outcome"]);
            for row in rows {
                t.add_row(vec![
                    row.slug.clone(),
                    if row.drifted { "yes" } else { "no" }.to_owned(),
                    or_dash(row.repair),
                    or_dash(row.outcome.clone()),
                ]);
            }
            println!("{t}");
            let drifted = rows.iter().filter(|r| r.drifted).count();
            println!(
                "infrastructure: {} tenant(s) checked, {drifted} drifted",
                rows.len()
            );
        }
    });
    if !failed.is_empty() {
        anyhow::bail!("not repaired: {}", failed.join("; "));
    }
    Ok(())
}

async fn reconcile_infrastructure(
    orch: &Orchestrator,
    dry_run: bool,
    failed: &mut Vec<String>,
) -> Result<Vec<InfraRow>> {
    let findings = orch.reconcile_infrastructure(dry_run).await?;
    let mut rows = Vec::with_capacity(findings.len());
    for finding in findings {
        let outcome = match finding.repair {
            Some(id) => {
                let progress = StepProgress::new(format!("repairing {}", finding.slug), 7);
                let result = orch.run_or_follow(id, &progress).await;
                progress.finish();
                Some(match result {
                    Ok(op) => op.state.to_string(),
                    Err(e) => {
                        failed.push(format!("{}: {e}", finding.slug));
                        "failed".to_owned()
                    }
                })
            }
            None => None,
        };
        rows.push(InfraRow {
            slug: finding.slug,
            drifted: finding.drifted,
            repair: finding.repair,
            outcome,
        });
    }
    Ok(rows)
}
