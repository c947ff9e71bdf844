//! `tenantry tenant …`.

use crate::cli::{Cli, CreateArgs, ListArgs, Output, TenantCommand};
use crate::context::open;
use crate::output::{emit, or_dash, table};
use crate::progress::StepProgress;
use anyhow::Result;
use serde::Serialize;
use tenantry_catalog::model::{OperationKind, Tenant, TenantFilter};
use tenantry_infra::TenantStorage;
use tenantry_orchestrator::{Orchestrator, ProvisionRequest};

pub async fn run(cli: &Cli, cmd: &TenantCommand) -> Result<()> {
    let orch = open(cli).await?;
    match cmd {
        TenantCommand::Create(args) => create(cli, &orch, args).await,
        TenantCommand::List(args) => list(cli, &orch, args).await,
        TenantCommand::Show(a) => show(cli, &orch, &a.slug).await,
        TenantCommand::History(a) => history(cli, &orch, &a.slug).await,
        TenantCommand::Suspend(a) => change(cli, &orch, &a.slug, OperationKind::Suspend).await,
        TenantCommand::Resume(a) => change(cli, &orch, &a.slug, OperationKind::Resume).await,
        TenantCommand::Delete(a) => change(cli, &orch, &a.slug, OperationKind::Delete).await,
    }
}

async fn create(cli: &Cli, orch: &Orchestrator, args: &CreateArgs) -> Result<()> {
    let req = ProvisionRequest {
        slug: args.slug.clone(),
        plan: args.plan.clone(),
        region: args.region.clone(),
        compliance: args.compliance.clone(),
        members: args.members,
        monthly_api_calls: args.monthly_api_calls,
        isolation: args.isolation,
        admin_email: args.admin_email.clone(),
    };
    if args.dry_run {
        let plan = orch.plan_provision(&req).await?;
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
            println!("steps      {}", plan.steps.join(" → "));
        });
        return Ok(());
    }
    let (tenant, op) = orch.request_provision(&req).await?;
    if args.no_wait {
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
    let progress = StepProgress::new(format!("provisioning {}", tenant.slug), op.steps.len());
    let result = orch.run_or_follow(op.id, &progress).await;
    progress.finish();
    result?;
    show(cli, orch, &tenant.slug).await
}

async fn list(cli: &Cli, orch: &Orchestrator, args: &ListArgs) -> Result<()> {
    let filter = TenantFilter {
        state: args.state,
        region: args.region.clone(),
        isolation: args.isolation,
        plan: args.plan.clone(),
        include_deleted: args.all,
    };
    let tenants = orch.catalog().tenants(&filter).await?;
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

/// What `tenant show` prints: the catalog record and its storage.
#[derive(Serialize)]
struct TenantView {
    #[serde(flatten)]
    tenant: Tenant,
    storage: StorageView,
}

#[derive(Serialize)]
struct StorageView {
    prefix: String,
    location: String,
    exists: bool,
    objects: u64,
    bytes: u64,
    quota_mb: Option<u64>,
}

async fn show(cli: &Cli, orch: &Orchestrator, slug: &str) -> Result<()> {
    let tenant = orch.catalog().tenant_by_slug(slug).await?;
    let storage = orch.storage();
    let usage = storage.usage(&tenant.region, tenant.id).await?;
    let view = TenantView {
        storage: StorageView {
            prefix: TenantStorage::prefix(&tenant.region, tenant.id).to_string(),
            location: storage.location().to_owned(),
            exists: storage.exists(&tenant.region, tenant.id).await?,
            objects: usage.objects,
            bytes: usage.bytes,
            quota_mb: orch.config().plan(&tenant.plan).map(|p| p.storage_quota_mb),
        },
        tenant,
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
            ("compute", t.compute.to_string()),
            ("shard", t.shard.clone()),
            ("placement rule", t.placement.rule.clone()),
            ("placement reason", t.placement.reason.clone()),
            ("space", or_dash(space)),
            ("schema version", or_dash(t.schema_version)),
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

async fn history(cli: &Cli, orch: &Orchestrator, slug: &str) -> Result<()> {
    let tenant = orch.catalog().tenant_by_slug(slug).await?;
    let transitions = orch.catalog().history(tenant.id).await?;
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

async fn change(cli: &Cli, orch: &Orchestrator, slug: &str, kind: OperationKind) -> Result<()> {
    let (tenant, op) = orch.request(slug, kind).await?;
    let progress = StepProgress::new(format!("{kind} {}", tenant.slug), op.steps.len());
    let result = orch.run_or_follow(op.id, &progress).await;
    progress.finish();
    let op = result?;
    let tenant = orch.catalog().tenant(tenant.id).await?;
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
