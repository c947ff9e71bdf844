//! The records the catalog keeps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use tenantry_core::events::EventType;
use tenantry_core::placement::{Characteristics, Placement};
use tenantry_core::shard::ShardState;
use tenantry_core::space::Space;
use tenantry_core::{Compute, Engine, Isolation, TenantId, TenantState};
use uuid::Uuid;

/// A tenant as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub plan: String,
    pub region: String,
    pub state: TenantState,
    pub isolation: Isolation,
    pub compute: Compute,
    /// The shard holding the tenant's space.
    pub shard: String,
    /// The placement decision, with the rule that decided and why.
    pub placement: Placement,
    /// What placement was decided from.
    pub characteristics: Characteristics,
    /// Where its data lives, once the space is created.
    pub space: Option<Space>,
    pub admin_email: String,
    /// The version of the newest migration applied to its space.
    pub schema_version: Option<i64>,
    /// The step and error of the operation that failed it, while it is `failed`.
    pub failure: Option<Failure>,
    /// Bumped whenever its placement changes, so that stale routers can tell.
    pub epoch: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a tenant is `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub operation: Uuid,
    pub step: String,
    pub error: String,
}

/// A tenant to record.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub slug: String,
    pub characteristics: Characteristics,
    pub placement: Placement,
    pub shard: String,
    pub admin_email: String,
    /// Its host names, recorded with it (each must be free).
    pub domains: tenantry_core::domain::TenantDomains,
}

/// A change to a tenant's recorded fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub space: Option<Option<Space>>,
    pub schema_version: Option<Option<i64>>,
    pub failure: Option<Option<Failure>>,
    /// A new plan and what placement decided for it (its isolation changes only by a move).
    pub plan: Option<PlanChange>,
}

/// A tenant's new plan, with its placement run again.
#[derive(Debug, Clone)]
pub struct PlanChange {
    pub plan: String,
    pub placement: Placement,
    pub characteristics: Characteristics,
}

/// Where a moved tenant lives now.
#[derive(Debug, Clone)]
pub struct Relocation {
    pub space: Space,
    pub shard: String,
    pub isolation: tenantry_core::Isolation,
}

impl Relocation {
    /// A move into `space`: its shard and isolation are the space's.
    pub fn to(space: &Space) -> Self {
        Self {
            space: space.clone(),
            shard: space.shard.clone(),
            isolation: space.kind,
        }
    }
}

/// Who changed what, and why: the context of a transition, kept in the audit table.
#[derive(Debug, Clone)]
pub struct Cause {
    /// What triggered the change: a command, an API call, or an operation's step.
    pub trigger: String,
    /// Who asked: `cli:<user>`, a token name, or `system`.
    pub actor: String,
    /// Anything else worth keeping.
    pub details: Value,
}

/// One row of a tenant's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub id: i64,
    pub tenant_id: TenantId,
    pub from: Option<TenantState>,
    pub to: TenantState,
    pub trigger: String,
    pub actor: String,
    pub details: Value,
    pub at: DateTime<Utc>,
}

/// An event to publish with a change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub payload: Value,
}

/// An event in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the outbox: events of one tenant are in lifecycle order by `seq`.
    pub seq: i64,
    /// Stable id, for consumers' de-duplication.
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A shard as registered in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub name: String,
    pub region: String,
    pub engine: Engine,
    /// Admin URL (PostgreSQL); may hold a password, so it is never shown.
    #[serde(skip_serializing)]
    pub url: Option<String>,
    pub directory: Option<String>,
    pub capacity: u32,
    pub state: ShardState,
    /// Tenant databases it holds now.
    pub used: u32,
}

macro_rules! words {
    ($(#[$m:meta])* $ty:ident { $($(#[$vm:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($(#[$vm])* $variant),+ }
        impl $ty {
            pub fn as_str(self) -> &'static str { match self { $($ty::$variant => $word),+ } }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($word => Ok($ty::$variant),)+ _ => Err(format!("unknown {} {s:?}", stringify!($ty))) }
            }
        }
    };
}

words!(
    /// What an operation does.
    OperationKind {
        Provision => "provision",
        Suspend => "suspend",
        Resume => "resume",
        Delete => "delete",
        /// Brings up a tenant's infrastructure (Terraform plan and apply).
        InfraProvision => "infra_provision",
        /// Changes a tenant's infrastructure to a new configuration.
        InfraUpdate => "infra_update",
        /// Tears a tenant's infrastructure down.
        InfraDeprovision => "infra_deprovision",
        /// Moves a tenant's data live to another isolation or shard.
        Move => "move",
        /// Ends a move: the source's data is removed.
        MoveComplete => "move_complete",
        /// Undoes a move: the tenant goes back to its old place with its new changes.
        MoveRollback => "move_rollback",
        /// Applies a plan change that keeps the tenant's isolation: its licence and compute.
        Update => "update",
    }
);

/// Where a tenant's infrastructure stands (the seeds' words, upper case as they have them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InfraStatus {
    Provisioning,
    Active,
    Updating,
    Deprovisioning,
    Deprovisioned,
    Failed,
}

impl InfraStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InfraStatus::Provisioning => "PROVISIONING",
            InfraStatus::Active => "ACTIVE",
            InfraStatus::Updating => "UPDATING",
            InfraStatus::Deprovisioning => "DEPROVISIONING",
            InfraStatus::Deprovisioned => "DEPROVISIONED",
            InfraStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for InfraStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InfraStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            InfraStatus::Provisioning,
            InfraStatus::Active,
            InfraStatus::Updating,
            InfraStatus::Deprovisioning,
            InfraStatus::Deprovisioned,
            InfraStatus::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown infrastructure status {s:?}"))
    }
}

/// A tenant's infrastructure (the seeds' TenantInfrastructure): what was asked for, where it
/// stands, and what Terraform planned and produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Infrastructure {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub status: InfraStatus,
    pub tier: String,
    pub cloud_provider: String,
    pub region: String,
    pub namespace: String,
    pub configuration: Value,
    /// Where Terraform keeps the tenant's state (`tenants/<tenant id>.tfstate`).
    pub state_key: String,
    /// The summary of the last plan: resources to add, change and destroy, and their addresses.
    pub plan: Option<Value>,
    /// The root module's outputs after the last apply.
    pub outputs: Option<Value>,
    /// Why the last operation failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A status change of a tenant's infrastructure to record.
#[derive(Debug, Clone)]
pub struct NewInfraTransition {
    pub from: Option<InfraStatus>,
    pub to: InfraStatus,
    pub trigger: String,
    pub details: Value,
}

/// A recorded status change of a tenant's infrastructure (the seeds'
/// InfrastructureStateTransition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraTransition {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub from: Option<InfraStatus>,
    pub to: InfraStatus,
    pub trigger: String,
    pub details: Value,
    pub at: DateTime<Utc>,
}

impl OperationKind {
    /// Whether the operation is about the tenant's infrastructure rather than its lifecycle.
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            OperationKind::InfraProvision
                | OperationKind::InfraUpdate
                | OperationKind::InfraDeprovision
        )
    }
}

words!(
    /// Where an operation is.
    OperationState {
        /// Queued; no worker has it.
        Pending => "pending",
        /// A worker is running its steps.
        Running => "running",
        /// A step failed for good; completed steps are being undone.
        RollingBack => "rolling_back",
        /// Every step is done.
        Succeeded => "succeeded",
        /// It failed; its completed steps were undone.
        Failed => "failed",
    }
);

words!(
    /// Where one step of an operation is.
    StepState {
        Pending => "pending",
        Running => "running",
        Done => "done",
        Undone => "undone",
        Failed => "failed",
    }
);

impl OperationState {
    /// Whether the operation still needs a worker.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OperationState::Pending | OperationState::Running | OperationState::RollingBack
        )
    }
}

/// A durable operation on one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: OperationKind,
    pub state: OperationState,
    /// What the operation was asked to do (beyond the tenant's record).
    pub params: Value,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub steps: Vec<Step>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One step of an operation, with its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub idx: i64,
    pub name: String,
    pub state: StepState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An operation to queue.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub id: Uuid,
    pub kind: OperationKind,
    pub steps: Vec<&'static str>,
    pub params: Value,
}

/// A step's checkpoint written in the same transaction as a state change, so that a step
/// whose effect is the transition itself is done exactly once.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    pub operation: Uuid,
    pub step: i64,
}

/// Which tenants to list.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    pub state: Option<TenantState>,
    pub region: Option<String>,
    pub isolation: Option<Isolation>,
    pub plan: Option<String>,
    /// Include deleted tenants.
    pub include_deleted: bool,
}

/// A database waiting in the warm pool, before it becomes a tenant's.
#[derive(Debug, Clone)]
pub struct NewPoolEntry {
    pub shard: String,
    pub database: String,
    /// The pooled role's credentials, sealed.
    pub secret: Vec<u8>,
    pub schema_version: Option<i64>,
}

/// What a tenant holds and how its queries go, for placement decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantStats {
    /// Rows carrying the tenant's id, per table.
    pub rows: std::collections::BTreeMap<String, i64>,
    pub size_bytes: i64,
    /// The size is the tenant's share of a shared space.
    pub size_estimated: bool,
    /// When `rows` and the size were collected; never, if `None`.
    pub collected_at: Option<DateTime<Utc>>,
    /// Queries the router ran for the tenant, and their total time, since `queries_since`.
    pub queries: i64,
    pub query_ms_total: f64,
    pub queries_since: Option<DateTime<Utc>>,
}

/// A claimed pooled database that became its tenant's: what the catalog records of it.
#[derive(Debug, Clone)]
pub struct PoolAdoption {
    /// The pool entry, removed.
    pub entry: Uuid,
    pub tenant: TenantId,
    /// The tenant's space: the database under its new name.
    pub space: tenantry_core::space::Space,
    pub schema_version: Option<i64>,
    /// The name of the tenant secret that keeps the credentials, and the sealed credentials.
    pub secret_name: String,
    pub sealed: Vec<u8>,
}

/// A database in the warm pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolEntry {
    pub id: Uuid,
    pub shard: String,
    pub database: String,
    #[serde(skip)]
    pub secret: Vec<u8>,
    pub schema_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The tenant whose provisioning claimed it; it stays in the pool until the tenant has
    /// adopted it ([`pool_adopted`](crate::CatalogStore::pool_adopted)).
    pub claimed_by: Option<TenantId>,
    pub claimed_at: Option<DateTime<Utc>>,
}

/// How many pooled databases a shard has: free ones, and ones claimed but not yet removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCount {
    pub shard: String,
    pub available: i64,
    pub claimed: i64,
}

/// Counts the metrics endpoint shows, computed by the database (`GROUP BY`) so that a scrape
/// costs the same with ten tenants as with tens of thousands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCounts {
    /// Tenants by state, isolation and region (deleted ones included).
    pub tenants: Vec<TenantCount>,
    /// Operations by kind and state.
    pub operations: Vec<OperationCount>,
    /// The newest outbox sequence number (0 when the outbox is empty).
    pub last_event_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCount {
    pub state: String,
    pub isolation: String,
    pub region: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
}

/// An API token as stored (its hash never leaves the catalog).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: Uuid,
    pub name: String,
    /// `reader`, `operator` or `admin`.
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The first answer given to a request with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotentResponse {
    pub key: String,
    /// A hash of the request, so that a key reused for another request is detected.
    pub request_hash: String,
    pub status: u16,
    pub body: Value,
}

/// An event a sink refused for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: i64,
    pub error: String,
    pub attempts: i64,
    pub at: DateTime<Utc>,
}

/// A tenant's domains from its `(domain, is_primary)` rows.
pub(crate) fn to_domains(
    rows: Vec<(String, bool)>,
) -> crate::Result<tenantry_core::domain::TenantDomains> {
    let mut domains = tenantry_core::domain::TenantDomains::default();
    for (name, primary) in rows {
        let domain = tenantry_core::domain::Domain::parse(&name).map_err(|e| {
            crate::CatalogError::Corrupt {
                column: "tenant_domains.domain",
                problem: e.to_string(),
            }
        })?;
        if primary {
            domains.primary = Some(domain);
        } else {
            domains.aliases.push(domain);
        }
    }
    Ok(domains)
}
