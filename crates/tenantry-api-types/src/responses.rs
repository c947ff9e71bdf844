//! Response bodies: the API's view of tenants, operations, events and the topology.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_core::events::EventType;
use tenantry_core::placement::{Characteristics, Placement};
use tenantry_core::shard::ShardState;
use tenantry_core::space::Space;
use tenantry_core::{Compute, Engine, Isolation, TenantState};
use utoipa::ToSchema;
use uuid::Uuid;

/// The answer to a request that started an operation (`202 Accepted`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The operation's id.
    pub operation_id: Uuid,
    /// Where to follow it: `GET` this URL.
    pub operation_url: String,
    /// The tenant it works on.
    pub tenant_id: Uuid,
    pub tenant_slug: String,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub plan: String,
    pub region: String,
    pub state: TenantState,
    pub isolation: Isolation,
    pub compute: Compute,
    pub shard: String,
    /// The placement decision, with the rule that decided and why.
    pub placement: Placement,
    pub characteristics: Characteristics,
    /// Where its data lives, once created. Never carries a password.
    pub space: Option<Space>,
    pub admin_email: String,
    pub schema_version: Option<i64>,
    pub failure: Option<Failure>,
    pub epoch: i64,
    /// The prefix of every key the tenant's code keeps in Redis (queues, caches), its own:
    /// the router gives it to shared requests, dedicated compute gets it as `REDIS_PREFIX`.
    #[schema(example = "tenantry:0190f1c2a7b84e6f9d3c5b1a2e4f6a8b:")]
    pub redis_prefix: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a tenant is `failed`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    pub operation: Uuid,
    pub step: String,
    pub error: String,
}

/// A page of tenants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantPage {
    pub items: Vec<Tenant>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What provisioning would do (`dry_run`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvisionPlan {
    pub slug: String,
    pub plan: String,
    pub region: String,
    pub placement: Placement,
    pub shard: String,
    pub space: Space,
    pub admin_email: String,
    /// Its host names, recorded with it.
    pub domains: Domains,
    pub steps: Vec<String>,
}

/// A tenant's host names: one primary and any aliases, unique across tenants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Domains {
    #[schema(example = "acme.example")]
    pub primary: Option<String>,
    #[schema(example = json!(["www.acme.example"]))]
    pub aliases: Vec<String>,
}

/// A durable operation and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `provision`, `suspend`, `resume` or `delete`.
    pub kind: String,
    /// `pending`, `running`, `rolling_back`, `succeeded` or `failed`.
    pub state: String,
    pub error: Option<String>,
    /// Steps done out of all steps.
    pub steps_done: usize,
    pub steps_total: usize,
    pub steps: Vec<Step>,
    /// The worker running it, while one holds it (`<host>:<pid>:<id>`).
    pub lease_owner: Option<String>,
    /// When that worker's claim lapses unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Infrastructure operations, in `GET /api/v1/operations/{id}`: the Terraform plan their
    /// plan phase made, while it is the tenant's latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<InfrastructurePlan>,
}

/// One step of an operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub name: String,
    /// `pending`, `running`, `done`, `undone` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// One state change of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    pub from: Option<TenantState>,
    pub to: TenantState,
    pub trigger: String,
    pub actor: String,
    pub details: Value,
    pub at: DateTime<Utc>,
}

/// A lifecycle event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the outbox; use as `after` to read on.
    pub seq: i64,
    /// Stable id, for de-duplication.
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_type: EventType,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// The `seq` to pass as `after` for the next page.
    pub next_after: i64,
}

/// A shard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Shard {
    pub name: String,
    pub region: String,
    pub engine: Engine,
    pub state: ShardState,
    pub capacity: u32,
    /// Tenant databases it holds.
    pub used: u32,
    pub room_left: u32,
    /// Live tenants whose space is on the shard, of any isolation.
    pub tenants: usize,
    /// Its directory (SQLite) or admin URL without the password (PostgreSQL).
    pub location: Option<String>,
}

/// A tenant's storage prefix and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantStorage {
    /// `<region>/tenants/<tenant id>`.
    pub prefix: String,
    /// The object store it lives in (a directory or a bucket URL).
    pub location: String,
    /// Whether the prefix has been created (its marker object exists).
    pub exists: bool,
    pub objects: u64,
    pub bytes: u64,
    /// The plan's storage quota in MiB.
    pub quota_mb: Option<u64>,
}

/// A region.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Region {
    pub name: String,
    pub shared_shard: Option<String>,
    pub shards: Vec<String>,
    /// Tenant databases its active shards can still take.
    pub room_left: u32,
}

/// A tenant's infrastructure (the seeds' TenantInfrastructure entity).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfrastructure {
    /// The infrastructure record's id.
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `PROVISIONING`, `ACTIVE`, `UPDATING`, `DEPROVISIONING`, `DEPROVISIONED` or `FAILED`.
    pub status: String,
    pub tier: String,
    /// `AZURE`, `AWS`, `GCP` or `LOCAL`.
    pub cloud_provider: String,
    pub region: String,
    /// The tenant's namespace (`tenant-<slug>`).
    pub namespace: String,
    pub configuration: Value,
    /// Where Terraform keeps the tenant's state, relative to the backend.
    pub terraform_state_key: String,
    /// The last plan.
    pub plan: Option<InfrastructurePlan>,
    /// The root module's outputs after the last apply.
    pub outputs: Option<Value>,
    /// Why the last operation failed (its step and Terraform's message).
    pub error: Option<String>,
    /// The latest infrastructure operation, with its current phase.
    pub operation: Option<InfrastructureOperation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The latest infrastructure operation of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureOperation {
    pub id: Uuid,
    /// `infra_provision`, `infra_update` or `infra_deprovision`.
    pub kind: String,
    /// `pending`, `running`, `rolling_back`, `succeeded` or `failed`.
    pub state: String,
    /// The phase running or next (`request`, `plan`, `apply`, `deploy`, `configure`, `verify`,
    /// `complete`); none once the operation is over.
    pub phase: Option<String>,
    /// `GET` this for every phase's state, attempts, timings and errors.
    pub operation_url: String,
}

/// One status change of a tenant's infrastructure (the seeds' InfrastructureStateTransition).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureTransition {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub from_state: Option<String>,
    pub to_state: String,
    /// What caused it (`infra_provision requested`, `ready`, `rolled back`, …).
    pub trigger: String,
    pub details: Value,
    pub timestamp: DateTime<Utc>,
}

/// What a Terraform plan would do (a dry run's answer; the last plan on the entity).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InfrastructurePlan {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    pub resources: Vec<PlannedResource>,
}

/// One resource a plan acts on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlannedResource {
    /// e.g. `module.tenant.terraform_data.storage`.
    pub address: String,
    /// `create`, `update`, `delete`, `replace`, …
    pub action: String,
}

/// What a tenant holds and how its queries go (`GET /api/v1/tenants/{slug}/stats`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantStats {
    /// Rows carrying the tenant's id, per table.
    pub rows: std::collections::BTreeMap<String, i64>,
    pub total_rows: i64,
    /// Bytes its data takes on disk.
    pub size_bytes: i64,
    /// The size is the tenant's share of a shared space (its rows' share of each table).
    pub size_estimated: bool,
    /// When rows and size were collected.
    pub collected_at: Option<DateTime<Utc>>,
    /// Queries its router ran, their mean time, and since when they are counted.
    pub queries: i64,
    pub avg_query_ms: Option<f64>,
    pub queries_since: Option<DateTime<Utc>>,
}

/// A tenant's own compute, as its runtime observes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantCompute {
    /// `shared` (it is served by the fleet's application) or `dedicated`.
    pub compute: Compute,
    /// The runtime of dedicated compute: `process` or `kubernetes`; absent for shared compute.
    pub runtime: Option<String>,
    /// `running`, `unhealthy`, `stopped` or `absent`; absent for shared compute.
    pub state: Option<String>,
    /// Where it answers, e.g. `http://127.0.0.1:41235`.
    pub endpoint: Option<String>,
    pub detail: Option<String>,
}

/// A tenant's licence, checked with the installation's public key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantLicence {
    /// Whether one was issued.
    pub issued: bool,
    /// Whether its signature verifies and it has not expired.
    pub valid: bool,
    /// Why it does not verify.
    pub error: Option<String>,
    /// Its contents, when it verifies.
    #[schema(value_type = Option<Object>)]
    pub licence: Option<Value>,
    /// Where it disagrees with the tenant's plan now (reissued by a plan change).
    pub stale: Vec<String>,
    /// The public key (base64) it verifies with, for the tenant's compute.
    pub public_key: String,
}

/// One difference the reconciler found between a tenant's declared and observed state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Drift {
    pub tenant_id: Uuid,
    pub slug: String,
    /// What differs: `space_behind`, `storage_missing`, `compute_down`,
    /// `compute_of_suspended`, `licence_missing`, `leftovers`, `database_missing`.
    pub kind: String,
    /// What was declared and what was observed, in words.
    pub detail: String,
    /// What the reconciler did (or, in a dry run, would do).
    pub repair: String,
    /// `repaired`, `failed`, `reported` (data loss: never repaired silently) or `planned`.
    pub outcome: String,
    pub error: Option<String>,
}

/// The last reconcile pass.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reconciliation {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub dry_run: bool,
    /// Tenants looked at.
    pub tenants: usize,
    pub drifts: Vec<Drift>,
}
