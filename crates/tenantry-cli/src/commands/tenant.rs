//! `tenantry tenant …`.

use crate::backend::{self, Backend, TenantQuery};
use crate::cli::{
    Cli, CreateArgs, DomainsArgs, ListArgs, MoveArgs, Output, StatsArgs, TenantCommand, UpdateArgs,
};
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use serde::Serialize;
use tenantry_api_types::requests::{CreateTenant, MoveTenant, SetDomains, UpdateTenant};
use tenantry_api_types::responses::{Operation, Tenant, TenantCompute, TenantStorage};
use tenantry_catalog::model::OperationKind;

pub async fn run(cli: &Cli, cmd: &TenantCommand) -> Result<()> {
    let b = backend::open(cli).await?;
    let b = b.as_ref();
    match cmd {
        TenantCommand::Create(args) => create(cli, b, args).await,
        TenantCommand::List(args) => list(cli, b, args).await,
        TenantCommand::Show(a) => show(cli, b, &a.slug).await,
        TenantCommand::History(a) => history(cli, b, &a.slug).await,
        TenantCommand::Suspend(a) => change(cli, b, &a.slug, OperationKind::Suspend).await,
        TenantCommand::Resume(a) => change(cli, b, &a.slug, OperationKind::Resume).await,
        TenantCommand::Delete(a) => change(cli, b, &a.slug, OperationKind::Delete).await,
        TenantCommand::Domains(a) => domains(cli, b, a).await,
        TenantCommand::Stats(a) => stats(cli, b, a).await,
        TenantCommand::Move(a) => move_tenant(cli, b, a).await,
        TenantCommand::Update(a) => update(cli, b, a).await,
        TenantCommand::Licence(a) => licence(cli, b, &a.slug).await,
        TenantCommand::Manifests(a) => {
            print!("{}", b.manifests(&a.slug).await?);
            Ok(())
        }
    }
}

async fn create(cli: &Cli, b: &dyn Backend, args: &CreateArgs) -> Result<()> {
    let req = CreateTenant {
        slug: args.slug.clone(),
        plan: args.plan.clone(),
        region: args.region.clone(),
        compliance: args.compliance.clone(),
        members: args.members,
        monthly_api_calls: args.monthly_api_calls,
        isolation: args.isolation.map(|i| i.to_string()),
        admin_email: args.admin_email.clone(),
        domain: args.domain.clone(),
        aliases: args.aliases.clone(),
        dry_run: args.dry_run,
    };
    if args.dry_run {
        let plan = b.plan_provision(req).await?;
        let value = serde_json::json!({ "dry_run": true, "plan": plan });
        emit(cli.output, &value, |_| {
            println!("Dry run: nothing was changed.");
            println!(
                "tenant     {} (plan {}, region {})",
                plan.slug, plan.plan, plan.region
            );
            println!("isolation  {}", plan.placement.isolation);
            println!("compute    {}", plan.placement.compute);
            println!("shard      {}", plan.shard);
            println!("rule       {}", plan.placement.rule);
            println!("reason     {}", plan.placement.reason);
            println!("admin      {}", plan.admin_email);
            if let Some(primary) = &plan.domains.primary {
                println!("domains    {}", domain_list(primary, &plan.domains.aliases));
            }
            println!("steps      {}", plan.steps.join(" → "));
        });
        return Ok(());
    }
    let op = b.request_provision(req).await?;
    if args.no_wait {
        let tenant = b.tenant(&args.slug).await?;
        emit(
            cli.output,
            &serde_json::json!({ "tenant": tenant, "operation": op }),
            |_| {
                println!(
                    "{} is queued: operation {} (`tenantry serve` runs it).",
                    tenant.slug, op.id
                );
            },
        );
        return Ok(());
    }
    follow(b, &op, format!("provisioning {}", args.slug)).await?;
    show(cli, b, &args.slug).await
}

fn domain_list(primary: &str, aliases: &[String]) -> String {
    std::iter::once(format!("{primary} (primary)"))
        .chain(aliases.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tenant domains SLUG [--primary D [--alias A]…] [--clear]`: shows, or replaces, a tenant's
/// host names.
async fn domains(cli: &Cli, b: &dyn Backend, args: &DomainsArgs) -> Result<()> {
    let domains = if args.primary.is_some() || args.clear {
        let set = SetDomains {
            primary: args.primary.clone(),
            aliases: args.aliases.clone(),
        };
        b.set_domains(&args.slug, set).await?
    } else {
        b.domains(&args.slug).await?
    };
    emit(cli.output, &domains, |d| match &d.primary {
        Some(primary) => println!("{}", domain_list(primary, &d.aliases)),
        None => println!("{} has no domain.", args.slug),
    });
    Ok(())
}

/// `tenant move SLUG --to I [--shard S]`, `--complete` or `--rollback`, followed to its end with
/// a progress bar.
async fn move_tenant(cli: &Cli, b: &dyn Backend, args: &MoveArgs) -> Result<()> {
    let req = MoveTenant {
        to: args.to.map(|i| i.to_string()),
        shard: args.shard.clone(),
        region: args.region.clone(),
        complete: args.complete,
        rollback: args.rollback,
        cancel: args.cancel,
    };
    let op = b.request_move(&args.slug, req).await?;
    let label = if args.cancel {
        "cancel move"
    } else {
        op.kind.as_str()
    };
    let result = follow(b, &op, format!("{label} {}", args.slug)).await;
    if args.cancel {
        return cancelled(cli, b, &args.slug, op.id, result.err()).await;
    }
    let op = result?;
    let tenant = b.tenant(&args.slug).await?;
    let value = serde_json::json!({
        "operation": op.id, "kind": op.kind, "state": op.state,
        "isolation": tenant.isolation, "shard": tenant.shard, "region": tenant.region,
        "epoch": tenant.epoch,
    });
    emit(cli.output, &value, |_| {
        println!(
            "{} now lives in {} isolation on {} in {} (epoch {}).",
            args.slug, tenant.isolation, tenant.shard, tenant.region, tenant.epoch
        );
        if op.kind == "move" {
            println!(
                "Its old place is kept and refuses its writes; `tenantry tenant move {0} --complete` removes it, `--rollback` goes back.",
                args.slug
            );
        }
    });
    Ok(())
}

/// Reports how a cancelled move ended: undone (the tenant where it was), or switched before
/// the cancel reached it.
async fn cancelled(
    cli: &Cli,
    b: &dyn Backend,
    slug: &str,
    operation: uuid::Uuid,
    error: Option<anyhow::Error>,
) -> Result<()> {
    let op = b.operation(operation).await?;
    let tenant = b.tenant(slug).await?;
    let undone = op.state == "failed"
        && op
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cancelled by"));
    if !undone {
        return Err(error.unwrap_or_else(|| {
            anyhow::anyhow!(
                "the move of {slug} switched before the cancel reached it: it lives in {} isolation on {} now; `tenantry tenant move {slug} --rollback` takes it back",
                tenant.isolation,
                tenant.shard
            )
        }));
    }
    let value = serde_json::json!({
        "operation": op.id, "kind": op.kind, "state": op.state, "cancelled": true,
        "isolation": tenant.isolation, "shard": tenant.shard, "epoch": tenant.epoch,
    });
    emit(cli.output, &value, |_| {
        println!(
            "The move of {slug} was cancelled and its target removed; {slug} still lives in {} isolation on {}.",
            tenant.isolation, tenant.shard
        );
    });
    Ok(())
}

/// `tenant stats SLUG [--refresh]`.
async fn stats(cli: &Cli, b: &dyn Backend, args: &StatsArgs) -> Result<()> {
    let stats = b.stats(&args.slug, args.refresh).await?;
    emit(cli.output, &stats, |s| {
        let mut t = table(&["table", "rows"]);
        for (name, n) in &s.rows {
            t.add_row(vec![name.clone(), n.to_string()]);
        }
        t.add_row(vec!["(all)".into(), s.total_rows.to_string()]);
        println!("{t}");
        let estimated = if s.size_estimated {
            " (its share of the shared space)"
        } else {
            ""
        };
        println!("size       {} bytes{estimated}", s.size_bytes);
        println!(
            "collected  {}",
            or_dash(s.collected_at.map(|t| t.to_rfc3339()))
        );
        match s.avg_query_ms {
            Some(avg) => println!("queries    {} (mean {avg:.2} ms)", s.queries),
            None => println!("queries    none reported by a router yet"),
        }
    });
    Ok(())
}

async fn list(cli: &Cli, b: &dyn Backend, args: &ListArgs) -> Result<()> {
    let query = TenantQuery {
        state: args.state,
        region: args.region.clone(),
        isolation: args.isolation,
        plan: args.plan.clone(),
        include_deleted: args.all,
    };
    let tenants = b.tenants(&query).await?;
    emit(cli.output, &tenants, |tenants| {
        let mut t = table(&[
            "slug",
            "state",
            "plan",
            "region",
            "isolation",
            "shard",
            "schema",
            "rule",
        ]);
        for x in tenants {
            t.add_row(vec![
                x.slug.clone(),
                x.state.to_string(),
                x.plan.clone(),
                x.region.clone(),
                x.isolation.to_string(),
                x.shard.clone(),
                or_dash(x.schema_version),
                x.placement.rule.clone(),
            ]);
        }
        println!("{t}");
        println!("{} tenant(s)", tenants.len());
    });
    Ok(())
}

/// What `tenant show` prints: the tenant and its storage.
#[derive(Serialize)]
struct TenantView {
    #[serde(flatten)]
    tenant: Tenant,
    storage: TenantStorage,
    #[serde(rename = "compute_status")]
    compute: TenantCompute,
    licence: LicenceSummary,
}

/// What `tenant show` says of a licence (the whole of it is `tenant licence`'s).
#[derive(Serialize)]
struct LicenceSummary {
    issued: bool,
    valid: bool,
    stale: Vec<String>,
}

async fn show(cli: &Cli, b: &dyn Backend, slug: &str) -> Result<()> {
    let licence = b.licence(slug).await?;
    let view = TenantView {
        tenant: b.tenant(slug).await?,
        storage: b.storage(slug).await?,
        compute: b.compute(slug).await?,
        licence: LicenceSummary {
            issued: licence.issued,
            valid: licence.valid,
            stale: licence.stale,
        },
    };
    emit(cli.output, &view, |v| {
        let t = &v.tenant;
        let mut table = table(&["field", "value"]);
        let space = t.space.as_ref().map(|s| {
            let at = s
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| s.schema.clone())
                .or_else(|| s.database.clone())
                .unwrap_or_default();
            format!("{} on {} ({at})", s.kind, s.shard)
        });
        let rows: Vec<(&str, String)> = vec![
            ("id", t.id.to_string()),
            ("slug", t.slug.clone()),
            ("state", t.state.to_string()),
            ("plan", t.plan.clone()),
            ("region", t.region.clone()),
            ("isolation", t.isolation.to_string()),
            ("compute", describe_compute(&v.compute)),
            ("licence", describe_licence(&v.licence)),
            ("shard", t.shard.clone()),
            ("placement rule", t.placement.rule.clone()),
            ("placement reason", t.placement.reason.clone()),
            ("space", or_dash(space)),
            ("schema version", or_dash(t.schema_version)),
            ("redis prefix", t.redis_prefix.clone()),
            ("admin", t.admin_email.clone()),
            (
                "compliance",
                or_dash(Some(t.characteristics.compliance.join(", ")).filter(|s| !s.is_empty())),
            ),
            (
                "storage",
                format!(
                    "{}/{} ({}; {} objects, {} bytes; quota {})",
                    v.storage.location,
                    v.storage.prefix,
                    if v.storage.exists { "exists" } else { "absent" },
                    v.storage.objects,
                    v.storage.bytes,
                    or_dash(v.storage.quota_mb.map(|q| format!("{q} MiB")))
                ),
            ),
            (
                "failure",
                or_dash(
                    t.failure
                        .as_ref()
                        .map(|f| format!("{}: {}", f.step, f.error)),
                ),
            ),
            ("created", t.created_at.to_rfc3339()),
            ("updated", t.updated_at.to_rfc3339()),
        ];
        for (k, val) in rows {
            table.add_row(vec![k.to_owned(), val]);
        }
        println!("{table}");
    });
    Ok(())
}

async fn history(cli: &Cli, b: &dyn Backend, slug: &str) -> Result<()> {
    let transitions = b.history(slug).await?;
    emit(cli.output, &transitions, |rows| {
        let mut t = table(&["at", "from", "to", "trigger", "actor"]);
        for r in rows {
            t.add_row(vec![
                r.at.to_rfc3339(),
                or_dash(r.from),
                r.to.to_string(),
                r.trigger.clone(),
                r.actor.clone(),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

fn describe_compute(c: &TenantCompute) -> String {
    match (&c.runtime, &c.state) {
        (Some(runtime), Some(state)) => format!(
            "{} ({runtime}, {state}{}{})",
            c.compute,
            c.endpoint
                .as_ref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default(),
            c.detail
                .as_ref()
                .map(|d| format!(", {d}"))
                .unwrap_or_default()
        ),
        _ => c.compute.to_string(),
    }
}

fn describe_licence(l: &LicenceSummary) -> String {
    match (l.issued, l.valid) {
        (false, _) => "none issued".into(),
        (true, false) => "INVALID (see `tenantry tenant licence`)".into(),
        (true, true) if l.stale.is_empty() => "valid".into(),
        (true, true) => format!("valid, stale: {}", l.stale.join("; ")),
    }
}

async fn update(cli: &Cli, b: &dyn Backend, args: &UpdateArgs) -> Result<()> {
    let started = b
        .change_plan(
            &args.slug,
            UpdateTenant {
                plan: args.plan.clone(),
            },
        )
        .await?;
    let Some(op) = started else {
        let tenant = b.tenant(&args.slug).await?;
        emit(
            cli.output,
            &serde_json::json!({ "tenant": tenant, "operation": null }),
            |_| {
                println!(
                    "{} is on plan {} already: nothing to change.",
                    tenant.slug, tenant.plan
                );
            },
        );
        return Ok(());
    };
    let op = follow(b, &op, format!("{} {}", op.kind, args.slug)).await?;
    let tenant = b.tenant(&args.slug).await?;
    emit(
        cli.output,
        &serde_json::json!({ "tenant": tenant, "operation": op }),
        |_| {
            println!(
                "{} is on plan {} ({} isolation, {} compute; operation {}).",
                tenant.slug, tenant.plan, tenant.isolation, tenant.compute, op.id
            );
            if op.kind == "move" {
                println!(
                    "Its data moved live; `tenantry tenant move {} --complete` ends the rollback window.",
                    tenant.slug
                );
            }
        },
    );
    Ok(())
}

async fn licence(cli: &Cli, b: &dyn Backend, slug: &str) -> Result<()> {
    let licence = b.licence(slug).await?;
    emit(cli.output, &licence, |l| {
        let mut t = table(&["field", "value"]);
        t.add_row(vec![
            "valid".to_owned(),
            match (l.valid, &l.error) {
                (true, _) => "yes: the signature verifies with the public key".to_owned(),
                (false, e) => format!("NO: {}", e.clone().unwrap_or_default()),
            },
        ]);
        if let Some(content) = l.licence.as_ref().and_then(|c| c.as_object()) {
            for (k, v) in content {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                t.add_row(vec![k.clone(), shown]);
            }
        }
        t.add_row(vec![
            "stale".to_owned(),
            or_dash(Some(l.stale.join("; ")).filter(|s| !s.is_empty())),
        ]);
        t.add_row(vec!["public key".to_owned(), l.public_key.clone()]);
        println!("{t}");
    });
    if !licence.valid {
        anyhow::bail!(
            "tenant {slug}'s licence is not valid: {}",
            licence.error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn change(cli: &Cli, b: &dyn Backend, slug: &str, kind: OperationKind) -> Result<()> {
    let op = b.request(slug, kind).await?;
    let op = follow(b, &op, format!("{kind} {slug}")).await?;
    let tenant = b.tenant(slug).await?;
    if cli.output == Output::Json {
        emit(
            cli.output,
            &serde_json::json!({ "tenant": tenant, "operation": op }),
            |_| {},
        );
    } else {
        println!("{} is {} (operation {}).", tenant.slug, tenant.state, op.id);
    }
    Ok(())
}

/// Runs (or follows) an operation to its end behind a progress bar.
async fn follow(b: &dyn Backend, op: &Operation, label: String) -> Result<Operation> {
    let progress = StepProgress::new(label, op.steps_total);
    let result = b.wait(op, &progress).await;
    progress.finish();
    result
}
