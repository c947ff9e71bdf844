//! The local backend: an orchestrator over the catalog of the configuration, as the commands
//! always worked. Answers go through the API's own conversions and views, so they are what a
//! server would answer.

use super::{Backend, Counter, TenantQuery};
use crate::cli::Cli;
use crate::context;
use crate::exit::BadInput;
use crate::progress::StepProgress;
use anyhow::Result;
use async_trait::async_trait;
use tenantry_api::routes::events::DeadLetter;
use tenantry_api::{Scope, convert, views};
use tenantry_api_types::admin::{
    AddShard, CreatedToken, MigrateFleet, PlacementAdvice, Plan, PoolCount, PoolFilled,
    SpaceResult, Token,
};
use tenantry_api_types::requests::{CreateTenant, MoveTenant, SetDomains, UpdateTenant};
use tenantry_api_types::responses::{
    Domains, Event, Operation, ProvisionPlan, Region, Shard, Tenant, TenantCompute, TenantLicence,
    TenantStats, TenantStorage, Transition,
};
use tenantry_catalog::model::{OperationKind, TenantFilter};
use tenantry_core::Isolation;
use tenantry_core::config::ShardConfig;
use tenantry_core::shard::ShardState;
use tenantry_orchestrator::fleet::{FleetProgress, FleetSelection};
use tenantry_orchestrator::{Orchestrator, ProvisionRequest};
use uuid::Uuid;

pub struct Local {
    orch: Orchestrator,
}

impl Local {
    pub async fn open(cli: &Cli) -> Result<Self> {
        Ok(Self {
            orch: context::open(cli).await?,
        })
    }

    async fn tenant_id(&self, slug: Option<&str>) -> Result<Option<tenantry_core::TenantId>> {
        Ok(match slug {
            Some(slug) => Some(self.orch.catalog().tenant_by_slug(slug).await?.id),
            None => None,
        })
    }
}

fn provision_request(req: CreateTenant) -> Result<ProvisionRequest> {
    let isolation = req
        .isolation
        .as_deref()
        .map(str::parse::<Isolation>)
        .transpose()
        .map_err(|e| BadInput(e.to_string()))?;
    Ok(ProvisionRequest {
        slug: req.slug,
        plan: req.plan,
        region: req.region,
        compliance: req.compliance,
        members: req.members,
        monthly_api_calls: req.monthly_api_calls,
        isolation,
        admin_email: req.admin_email,
        domain: req.domain,
        aliases: req.aliases,
    })
}

/// Reports each space of a fleet migration to a [`Counter`].
struct FleetCounter<'a>(&'a dyn Counter);

impl FleetProgress for FleetCounter<'_> {
    fn planned(&self, spaces: usize) {
        self.0.planned(spaces);
    }

    fn finished(&self, r: &tenantry_orchestrator::fleet::SpaceResult) {
        let r = convert::space_result(r.clone());
        self.0.finished(&format!(
            "{} {}",
            r.label,
            crate::commands::describe_space(&r)
        ));
    }
}

#[async_trait]
impl Backend for Local {
    async fn plans(&self) -> Result<Vec<Plan>> {
        Ok(views::plans(self.orch.config()))
    }

    async fn placement_advice(&self, refresh: bool) -> Result<Vec<PlacementAdvice>> {
        Ok(views::placement_advice(&self.orch, refresh).await?)
    }

    async fn regions(&self) -> Result<Vec<Region>> {
        Ok(views::regions(&self.orch).await?)
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        Ok(views::shards(&self.orch).await?)
    }

    async fn add_shard(&self, s: AddShard) -> Result<Shard> {
        let shard = self
            .orch
            .add_shard(ShardConfig {
                name: s.name,
                region: s.region,
                engine: s.engine,
                url: s.url,
                directory: s.directory.map(Into::into),
                capacity: s.capacity,
                state: ShardState::Active,
            })
            .await?;
        Ok(views::shard(&self.orch, &shard.name).await?)
    }

    async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard> {
        let shard = self.orch.set_shard_state(name, state).await?;
        Ok(views::shard(&self.orch, &shard.name).await?)
    }

    async fn plan_provision(&self, req: CreateTenant) -> Result<ProvisionPlan> {
        let plan = self.orch.plan_provision(&provision_request(req)?).await?;
        Ok(convert::provision_plan(plan))
    }

    async fn request_provision(&self, req: CreateTenant) -> Result<Operation> {
        let (_, op) = self
            .orch
            .request_provision(&provision_request(req)?)
            .await?;
        Ok(convert::operation(op))
    }

    async fn request(&self, slug: &str, kind: OperationKind) -> Result<Operation> {
        let (_, op) = self.orch.request(slug, kind).await?;
        Ok(convert::operation(op))
    }

    async fn wait(&self, op: &Operation, progress: &StepProgress) -> Result<Operation> {
        let op = self.orch.run_or_follow(op.id, progress).await?;
        Ok(convert::operation(op))
    }

    async fn tenants(&self, q: &TenantQuery) -> Result<Vec<Tenant>> {
        let filter = TenantFilter {
            state: q.state,
            region: q.region.clone(),
            isolation: q.isolation,
            plan: q.plan.clone(),
            include_deleted: q.include_deleted,
        };
        let tenants = self.orch.catalog().tenants(&filter).await?;
        Ok(tenants.into_iter().map(convert::tenant).collect())
    }

    async fn tenant(&self, slug: &str) -> Result<Tenant> {
        Ok(convert::tenant(
            self.orch.catalog().tenant_by_slug(slug).await?,
        ))
    }

    async fn storage(&self, slug: &str) -> Result<TenantStorage> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        Ok(views::storage(&self.orch, &tenant).await?)
    }

    async fn compute(&self, slug: &str) -> Result<TenantCompute> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        Ok(views::compute(&self.orch, &tenant).await?)
    }

    async fn licence(&self, slug: &str) -> Result<TenantLicence> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        Ok(views::licence(&self.orch, &tenant).await?)
    }

    async fn manifests(&self, slug: &str) -> Result<String> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        Ok(self.orch.manifests(&tenant).await?)
    }

    async fn change_plan(&self, slug: &str, req: UpdateTenant) -> Result<Option<Operation>> {
        use tenantry_orchestrator::plan_change::PlanChangeStarted;
        let (_, started) = self
            .orch
            .request_plan_change(slug, &req.plan, &context::actor())
            .await?;
        Ok(match started {
            PlanChangeStarted::Unchanged => None,
            PlanChangeStarted::Update(op) | PlanChangeStarted::Move(op) => {
                Some(convert::operation(op))
            }
        })
    }

    async fn domains(&self, slug: &str) -> Result<Domains> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        Ok(convert::domains(
            self.orch.catalog().domains(tenant.id).await?,
        ))
    }

    async fn request_move(&self, slug: &str, req: MoveTenant) -> Result<Operation> {
        let actor = context::actor();
        let (_, op) =
            if req.complete {
                self.orch.request_move_complete(slug, &actor).await?
            } else if req.rollback {
                self.orch.request_move_rollback(slug, &actor).await?
            } else if req.cancel {
                self.orch.request_move_cancel(slug, &actor).await?
            } else {
                let to: Isolation =
                    req.to.as_deref().unwrap_or_default().parse().map_err(
                        |e: tenantry_core::isolation::UnknownValue| BadInput(e.to_string()),
                    )?;
                self.orch
                    .request_move_to(
                        slug,
                        to,
                        req.shard.as_deref(),
                        req.region.as_deref(),
                        &actor,
                    )
                    .await?
            };
        Ok(convert::operation(op))
    }

    async fn stats(&self, slug: &str, refresh: bool) -> Result<TenantStats> {
        Ok(convert::tenant_stats(
            self.orch.tenant_stats(slug, refresh).await?,
        ))
    }

    async fn set_domains(&self, slug: &str, domains: SetDomains) -> Result<Domains> {
        let set = self
            .orch
            .set_domains(slug, domains.primary.as_deref(), &domains.aliases)
            .await?;
        Ok(convert::domains(set))
    }

    async fn history(&self, slug: &str) -> Result<Vec<Transition>> {
        let tenant = self.orch.catalog().tenant_by_slug(slug).await?;
        let rows = self.orch.catalog().history(tenant.id).await?;
        Ok(rows.into_iter().map(convert::transition).collect())
    }

    async fn operations(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<Operation>> {
        let tenant = self.tenant_id(tenant).await?;
        let ops = self.orch.catalog().operations(tenant, limit).await?;
        Ok(ops.into_iter().map(convert::operation).collect())
    }

    async fn operation(&self, id: Uuid) -> Result<Operation> {
        let op = self.orch.catalog().operation(id).await?;
        let plan = self.orch.operation_plan(&op).await?;
        Ok(convert::operation_with_plan(op, plan)?)
    }

    async fn open_operations(&self) -> Result<Vec<Operation>> {
        let ops = self.orch.open_operations().await?;
        Ok(ops.into_iter().map(convert::operation).collect())
    }

    async fn resume(&self, id: Uuid, progress: &StepProgress) -> Result<Operation> {
        let op = self.orch.resume(id, progress, true).await?;
        Ok(convert::operation(op))
    }

    async fn events(&self, tenant: Option<&str>, after: i64, limit: i64) -> Result<Vec<Event>> {
        let tenant = self.tenant_id(tenant).await?;
        let events = self.orch.catalog().events(tenant, after, limit).await?;
        Ok(events.into_iter().map(convert::event).collect())
    }

    async fn last_event(&self, tenant: Option<&str>) -> Result<i64> {
        let tenant = self.tenant_id(tenant).await?;
        let events = self.orch.catalog().events(tenant, 0, i64::MAX).await?;
        Ok(events.last().map_or(0, |e| e.seq))
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let letters = self.orch.catalog().dead_letters().await?;
        Ok(letters
            .into_iter()
            .map(|d| DeadLetter {
                sink: d.sink,
                seq: d.seq,
                error: d.error,
                attempts: d.attempts,
                at: d.at,
            })
            .collect())
    }

    async fn create_token(&self, scope: &str, name: Option<String>) -> Result<CreatedToken> {
        let scope: Scope = scope.parse().map_err(BadInput)?;
        let name = name.unwrap_or_else(|| tenantry_api::tokens::default_name(scope));
        let (token, plain) =
            tenantry_api::tokens::issue(self.orch.catalog().as_ref(), &name, scope).await?;
        Ok(CreatedToken {
            token: plain,
            name: token.name,
            scope: token.scope,
        })
    }

    async fn revoke_token(&self, name: &str) -> Result<Token> {
        Ok(convert::token(
            self.orch.catalog().revoke_token(name).await?,
        ))
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        let tokens = self.orch.catalog().tokens().await?;
        Ok(tokens.into_iter().map(convert::token).collect())
    }

    async fn pool_status(&self) -> Result<Vec<PoolCount>> {
        let rows = self.orch.catalog().pool_status().await?;
        Ok(rows.into_iter().map(convert::pool_count).collect())
    }

    async fn fill_pool(
        &self,
        shard: &str,
        count: u32,
        progress: &dyn Counter,
    ) -> Result<PoolFilled> {
        progress.planned(count as usize);
        let created = self
            .orch
            .fill_pool(shard, count, &|done| {
                progress.finished(&format!("pool {shard}: {done}/{count} databases ready"))
            })
            .await?;
        Ok(PoolFilled {
            created,
            pool: self.pool_status().await?,
        })
    }

    async fn migrate(&self, req: MigrateFleet, progress: &dyn Counter) -> Result<Vec<SpaceResult>> {
        let selection = FleetSelection {
            slugs: req.tenants,
            region: req.region,
            isolation: req.isolation,
        };
        let mut results = self
            .orch
            .migrate_fleet(
                &selection,
                req.concurrency,
                req.dry_run,
                &FleetCounter(progress),
            )
            .await?;
        results.sort_by(|a, b| a.label.cmp(&b.label));
        Ok(results.into_iter().map(convert::space_result).collect())
    }
}
