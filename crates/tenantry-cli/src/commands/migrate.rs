//! `tenantry migrate`: the fleet migration, with a progress bar and a result per space.

use crate::cli::{Cli, MigrateArgs};
use crate::context::open;
use crate::output::{emit, table};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use tenantry_orchestrator::fleet::{FleetProgress, FleetSelection, SpaceOutcome, SpaceResult};

struct Bar(ProgressBar);

impl FleetProgress for Bar {
    fn planned(&self, spaces: usize) {
        self.0.set_length(spaces as u64);
    }

    fn finished(&self, r: &SpaceResult) {
        self.0.inc(1);
        if self.0.is_hidden() {
            eprintln!(
                "[{}/{}] {} {}",
                self.0.position(),
                self.0.length().unwrap_or(0),
                r.label,
                describe(&r.outcome)
            );
        }
    }
}

fn describe(o: &SpaceOutcome) -> String {
    match o {
        SpaceOutcome::Migrated { from, to } => format!(
            "migrated {} → {}",
            from.map_or("none".into(), |v| v.to_string()),
            to.map_or("none".into(), |v| v.to_string())
        ),
        SpaceOutcome::UpToDate { version } => {
            format!(
                "up to date ({})",
                version.map_or("none".into(), |v| v.to_string())
            )
        }
        SpaceOutcome::WouldApply { migrations } if migrations.is_empty() => {
            "nothing to apply".into()
        }
        SpaceOutcome::WouldApply { migrations } => format!(
            "would apply {}",
            migrations
                .iter()
                .map(|(v, d)| format!("{v}_{d}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SpaceOutcome::Failed { error } => format!("FAILED: {error}"),
    }
}

pub async fn run(cli: &Cli, args: &MigrateArgs) -> Result<()> {
    let orch = open(cli).await?;
    let selection = FleetSelection {
        slugs: args.tenants.clone(),
        region: args.region.clone(),
        isolation: args.isolation,
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("migrating [{bar:30}] {pos}/{len} spaces ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = Bar(bar);
    let mut results = orch
        .migrate_fleet(&selection, args.concurrency, args.dry_run, &progress)
        .await?;
    progress.0.finish_and_clear();
    results.sort_by(|a, b| a.label.cmp(&b.label));
    let failed: Vec<&SpaceResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, SpaceOutcome::Failed { .. }))
        .collect();
    emit(cli.output, &results, |results| {
        let mut t = table(&["space", "isolation", "shard", "tenants", "result", "took"]);
        for r in results {
            t.add_row(vec![
                r.label.clone(),
                r.isolation.to_string(),
                r.shard.clone(),
                r.tenants.len().to_string(),
                describe(&r.outcome),
                format!("{} ms", r.took_ms),
            ]);
        }
        println!("{t}");
    });
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} space(s) failed to migrate: {}; fix them and run `tenantry migrate` again — finished spaces are not touched",
            failed.len(),
            results.len(),
            failed
                .iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
