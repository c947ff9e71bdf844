//! Where a command's work is done: on the catalog, through an orchestrator in this process
//! ([`local`]), or by a `tenantry serve` over its REST API ([`remote`], with `--server URL
//! --token T`). Both answer in the API's types (`tenantry-api-types`), so a command prints the
//! same tables and the same `--output json`, and exits with the same code, either way.
//!
//! # Layout
//! - [`local`]: the orchestrator over the catalog of the configuration.
//! - [`remote`]: an HTTP client of the API; problem documents become errors.

pub mod local;
pub mod remote;

use crate::cli::Cli;
use crate::exit::BadInput;
use crate::progress::StepProgress;
use anyhow::Result;
use async_trait::async_trait;
use tenantry_api::routes::events::DeadLetter;
use tenantry_api_types::admin::{
    AddShard, CreatedToken, MigrateFleet, PlacementAdvice, Plan, PoolCount, PoolFilled,
    SpaceResult, Token,
};
use tenantry_api_types::requests::{CreateTenant, MoveTenant, SetDomains, UpdateTenant};
use tenantry_api_types::responses::{
    Domains, Event, Operation, ProvisionPlan, Region, Shard, Tenant, TenantCompute, TenantLicence,
    TenantStats, TenantStorage, Transition,
};
use tenantry_catalog::model::OperationKind;
use tenantry_core::shard::ShardState;
use tenantry_core::{Isolation, TenantState};
use uuid::Uuid;

/// Which tenants `tenant list` shows.
#[derive(Debug, Clone, Default)]
pub struct TenantQuery {
    pub state: Option<TenantState>,
    pub region: Option<String>,
    pub isolation: Option<Isolation>,
    pub plan: Option<String>,
    pub include_deleted: bool,
}

/// Told how far a fleet migration or a pool fill has come.
pub trait Counter: Send + Sync {
    /// The total is known.
    fn planned(&self, _total: usize) {}
    /// One more item finished, described in a line for logs.
    fn finished(&self, _line: &str) {}
}

/// What the commands need, local or remote.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn plans(&self) -> Result<Vec<Plan>>;
    /// Tenants past a growth threshold, with the move each is advised.
    async fn placement_advice(&self, refresh: bool) -> Result<Vec<PlacementAdvice>>;
    async fn regions(&self) -> Result<Vec<Region>>;
    async fn shards(&self) -> Result<Vec<Shard>>;
    async fn add_shard(&self, shard: AddShard) -> Result<Shard>;
    async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard>;

    /// What provisioning would do; nothing is written.
    async fn plan_provision(&self, req: CreateTenant) -> Result<ProvisionPlan>;
    /// Records a provisioning and returns its queued operation.
    async fn request_provision(&self, req: CreateTenant) -> Result<Operation>;
    /// Records a live move (or its completion or rollback) and returns its queued operation.
    async fn request_move(&self, slug: &str, req: MoveTenant) -> Result<Operation>;
    /// Records a suspend, resume or delete and returns its queued operation.
    async fn request(&self, slug: &str, kind: OperationKind) -> Result<Operation>;
    /// Runs (locally) or follows (remotely) the operation until it ends; a failed operation is
    /// an error naming the step.
    async fn wait(&self, op: &Operation, progress: &StepProgress) -> Result<Operation>;

    async fn tenants(&self, query: &TenantQuery) -> Result<Vec<Tenant>>;
    async fn tenant(&self, slug: &str) -> Result<Tenant>;
    async fn storage(&self, slug: &str) -> Result<TenantStorage>;
    /// The tenant's own compute as its runtime observes it.
    async fn compute(&self, slug: &str) -> Result<TenantCompute>;
    /// The tenant's licence, verified.
    async fn licence(&self, slug: &str) -> Result<TenantLicence>;
    /// The Kubernetes objects of the tenant's compute, as YAML with secrets redacted.
    async fn manifests(&self, slug: &str) -> Result<String>;
    /// Changes the tenant's plan; the operation it started (an update or a move), if any.
    async fn change_plan(&self, slug: &str, req: UpdateTenant) -> Result<Option<Operation>>;
    async fn domains(&self, slug: &str) -> Result<Domains>;
    /// A tenant's statistics, collected from its space first when `refresh`.
    async fn stats(&self, slug: &str, refresh: bool) -> Result<TenantStats>;
    async fn set_domains(&self, slug: &str, domains: SetDomains) -> Result<Domains>;
    async fn history(&self, slug: &str) -> Result<Vec<Transition>>;

    async fn operations(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<Operation>>;
    async fn operation(&self, id: Uuid) -> Result<Operation>;
    /// Unfinished operations, oldest first.
    async fn open_operations(&self) -> Result<Vec<Operation>>;
    /// Continues an interrupted operation until it ends.
    async fn resume(&self, id: Uuid, progress: &StepProgress) -> Result<Operation>;

    async fn events(&self, tenant: Option<&str>, after: i64, limit: i64) -> Result<Vec<Event>>;
    /// The newest event's `seq` (0 when there is none).
    async fn last_event(&self, tenant: Option<&str>) -> Result<i64>;
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>>;

    async fn create_token(&self, scope: &str, name: Option<String>) -> Result<CreatedToken>;
    async fn revoke_token(&self, name: &str) -> Result<Token>;
    async fn tokens(&self) -> Result<Vec<Token>>;

    async fn pool_status(&self) -> Result<Vec<PoolCount>>;
    async fn fill_pool(
        &self,
        shard: &str,
        count: u32,
        progress: &dyn Counter,
    ) -> Result<PoolFilled>;
    /// A fleet migration; results in label order.
    async fn migrate(&self, req: MigrateFleet, progress: &dyn Counter) -> Result<Vec<SpaceResult>>;
}

/// The backend the command line asks for: remote with `--server`, else the local catalog.
pub async fn open(cli: &Cli) -> Result<Box<dyn Backend>> {
    match &cli.server {
        Some(url) => {
            let token = cli.token.clone().ok_or_else(|| {
                BadInput(format!(
                    "--server {url} needs an API token: pass --token or set TENANTRY_TOKEN (create one with `tenantry token create --scope operator`)"
                ))
            })?;
            Ok(Box::new(remote::Remote::new(url, token)?))
        }
        None => Ok(Box::new(local::Local::open(cli).await?)),
    }
}

/// Refuses `--server` for a command that works on local files only.
pub fn local_only(cli: &Cli, command: &str) -> Result<()> {
    if let Some(url) = &cli.server {
        return Err(BadInput(format!(
            "`tenantry {command}` works on this machine only and cannot run against --server {url}; drop --server (and TENANTRY_SERVER)"
        ))
        .into());
    }
    Ok(())
}
