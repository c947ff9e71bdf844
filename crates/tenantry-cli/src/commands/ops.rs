//! `tenantry ops …`: operations and their steps.

use crate::backend::{self, Backend};
use crate::cli::{Cli, OpsCommand};
use crate::exit::BadInput;
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use tenantry_api_types::responses::Operation;
use tenantry_catalog::model::OperationKind;
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
    let b = backend::open(cli).await?;
    match cmd {
        OpsCommand::List { tenant, limit } => {
            let ops = b.operations(tenant.as_deref(), *limit).await?;
            emit(cli.output, &ops, |ops| {
                let mut t = table(&["id", "kind", "state", "steps done", "created", "error"]);
                for op in ops {
                    t.add_row(vec![
                        op.id.to_string(),
                        op.kind.clone(),
                        op.state.clone(),
                        format!("{}/{}", op.steps_done, op.steps_total),
                        op.created_at.to_rfc3339(),
                        or_dash(op.error.clone()),
                    ]);
                }
                println!("{t}");
            });
        }
        OpsCommand::Show { id } => {
            let op = b.operation(parse_id(id)?).await?;
            emit(cli.output, &op, print_operation);
        }
        OpsCommand::Resume { id } => resume(cli, b.as_ref(), id.as_deref()).await?,
        OpsCommand::Steps { .. } => unreachable!("handled above"),
    }
    Ok(())
}

async fn resume(cli: &Cli, b: &dyn Backend, id: Option<&str>) -> Result<()> {
    let ops = match id {
        Some(id) => vec![b.operation(parse_id(id)?).await?],
        None => b.open_operations().await?,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for op in ops {
        let progress = StepProgress::new(format!("{} {}", op.kind, op.id), op.steps_total);
        let outcome = b.resume(op.id, &progress).await;
        progress.finish();
        if let Err(e) = outcome {
            eprintln!("operation {}: {e}", op.id);
            failures.push(op.id);
        }
        results.push(b.operation(op.id).await?);
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
    Ok(())
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
    for (idx, s) in op.steps.iter().enumerate() {
        t.add_row(vec![
            (idx + 1).to_string(),
            s.name.clone(),
            s.state.clone(),
            s.attempts.to_string(),
            or_dash(s.duration_ms.map(|ms| format!("{ms} ms"))),
            or_dash(s.last_error.clone()),
        ]);
    }
    println!("{t}");
    if let Some(plan) = &op.plan {
        println!(
            "plan: {} to add, {} to change, {} to destroy",
            plan.add, plan.change, plan.destroy
        );
        let mut t = table(&["resource", "action"]);
        for r in &plan.resources {
            t.add_row(vec![r.address.clone(), r.action.clone()]);
        }
        println!("{t}");
    }
}
