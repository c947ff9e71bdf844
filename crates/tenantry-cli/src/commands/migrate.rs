//! `tenantry migrate`: the fleet migration, with a progress bar and a result per space.

use crate::backend;
use crate::cli::{Cli, MigrateArgs};
use crate::output::{emit, table};
use crate::progress::counter_bar;
use anyhow::Result;
use tenantry_api_types::admin::{MigrateFleet, SpaceResult};

/// One space's result, in words.
pub fn describe_space(r: &SpaceResult) -> String {
    let v = |v: Option<i64>| v.map_or("none".into(), |v| v.to_string());
    match r.result.as_str() {
        "migrated" => format!("migrated {} → {}", v(r.from), v(r.to)),
        "up_to_date" => format!("up to date ({})", v(r.version)),
        "would_apply" => match r.migrations.as_deref() {
            None | Some([]) => "nothing to apply".into(),
            Some(ms) => format!(
                "would apply {}",
                ms.iter()
                    .map(|(v, d)| format!("{v}_{d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        "failed" => format!("FAILED: {}", r.error.as_deref().unwrap_or_default()),
        other => other.to_owned(),
    }
}

pub async fn run(cli: &Cli, args: &MigrateArgs) -> Result<()> {
    let b = backend::open(cli).await?;
    let req = MigrateFleet {
        tenants: args.tenants.clone(),
        region: args.region.clone(),
        isolation: args.isolation,
        concurrency: args.concurrency,
        dry_run: args.dry_run,
    };
    let bar = counter_bar("migrating", "spaces");
    let results = b.migrate(req, &bar).await;
    bar.finish();
    let results = results?;
    let failed: Vec<&SpaceResult> = results.iter().filter(|r| r.result == "failed").collect();
    emit(cli.output, &results, |results| {
        let mut t = table(&["space", "isolation", "shard", "tenants", "result", "took"]);
        for r in results {
            t.add_row(vec![
                r.label.clone(),
                r.isolation.to_string(),
                r.shard.clone(),
                r.tenants.len().to_string(),
                describe_space(r),
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
