//! `tenantry ops …`: operations and their steps.

use crate::cli::{Cli, OpsCommand};
use crate::context::open;
use crate::exit::BadInput;
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use tenantry_catalog::model::{Operation, OperationKind};
use tenantry_orchestrator::steps::steps_of;
use uuid::Uuid;

fn parse_id(id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| {
        BadInput(format!(
            "{id:?} is not an operation id; `tenantry ops list` shows them"
        ))
        .into()
    })
}

pub async fn run(cli: &Cli, cmd: &OpsCommand) -> Result<()> {
    if let OpsCommand::Steps { kind } = cmd {
        let kind: OperationKind = kind.parse().map_err(|_| {
            BadInput(format!(
                "unknown operation kind {kind:?}: expected provision, suspend, resume or delete"
            ))
        })?;
        let steps = steps_of(kind);
        emit(cli.output, &steps, |steps| {
            for s in *steps {
                println!("{s}");
            }
        });
        return Ok(());
    }
    let orch = open(cli).await?;
    match cmd {
        OpsCommand::List { tenant, limit } => {
            let tenant_id = match tenant {
                Some(slug) => Some(orch.catalog().tenant_by_slug(slug).await?.id),
                None => None,
            };
            let ops = orch.catalog().operations(tenant_id, *limit).await?;
            emit(cli.output, &ops, |ops| {
                let mut t = table(&["id", "kind", "state", "steps done", "created", "error"]);
                for op in ops {
                    let done = op
                        .steps
                        .iter()
                        .filter(|s| s.state == tenantry_catalog::model::StepState::Done)
                        .count();
                    t.add_row(vec![
                        op.id.to_string(),
                        op.kind.to_string(),
                        op.state.to_string(),
                        format!("{done}/{}", op.steps.len()),
                        op.created_at.to_rfc3339(),
                        or_dash(op.error.clone()),
                    ]);
                }
                println!("{t}");
            });
        }
        OpsCommand::Show { id } => {
            let op = orch.catalog().operation(parse_id(id)?).await?;
            // An infrastructure operation shows the plan its Plan phase stored (the tenant's
            // latest) before Apply changed anything.
            let plan = match op.kind.is_infrastructure() {
                true => orch
                    .catalog()
                    .infrastructure(op.tenant_id)
                    .await?
                    .and_then(|i| i.plan),
                false => None,
            };
            let view = OperationView { op, plan };
            emit(cli.output, &view, |v| {
                print_operation(&v.op);
                if let Some(plan) = &v.plan {
                    print_plan(plan);
                }
            });
        }
        OpsCommand::Resume { id } => {
            let ops = match id {
                Some(id) => vec![orch.catalog().operation(parse_id(id)?).await?],
                None => orch.open_operations().await?,
            };
            let mut results = Vec::new();
            let mut failures = Vec::new();
            for op in ops {
                let progress = StepProgress::new(format!("{} {}", op.kind, op.id), op.steps.len());
                let outcome = orch.resume(op.id, &progress, true).await;
                progress.finish();
                if let Err(e) = outcome {
                    eprintln!("operation {}: {e}", op.id);
                    failures.push(op.id);
                }
                results.push(orch.catalog().operation(op.id).await?);
            }
            emit(cli.output, &results, |ops| {
                if ops.is_empty() {
                    println!("No interrupted operations.");
                }
                for op in ops {
                    println!("{} {} {}", op.id, op.kind, op.state);
                }
            });
            if !failures.is_empty() {
                anyhow::bail!("{} operation(s) did not succeed", failures.len());
            }
        }
        OpsCommand::Steps { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// What `ops show` prints: the operation, and for infrastructure operations the plan.
#[derive(serde::Serialize)]
struct OperationView {
    #[serde(flatten)]
    op: Operation,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<serde_json::Value>,
}

fn print_plan(plan: &serde_json::Value) {
    println!(
        "plan: {} to add, {} to change, {} to destroy",
        plan["add"], plan["change"], plan["destroy"]
    );
    for resource in plan["resources"].as_array().into_iter().flatten() {
        println!(
            "  {} {}",
            resource["action"].as_str().unwrap_or("?"),
            resource["address"].as_str().unwrap_or("?")
        );
    }
}

fn print_operation(op: &Operation) {
    println!(
        "operation {} ({}) on tenant {}: {}",
        op.id, op.kind, op.tenant_id, op.state
    );
    if let Some(e) = &op.error {
        println!("error: {e}");
    }
    let mut t = table(&["#", "step", "state", "attempts", "took", "error"]);
    for s in &op.steps {
        let took = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format!("{} ms", (b - a).num_milliseconds()),
            _ => "-".into(),
        };
        t.add_row(vec![
            (s.idx + 1).to_string(),
            s.name.clone(),
            s.state.to_string(),
            s.attempts.to_string(),
            took,
            or_dash(s.last_error.clone()),
        ]);
    }
    println!("{t}");
}
