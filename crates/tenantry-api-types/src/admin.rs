//! The administrator's and operator's resources beyond tenants: plans, runtime shards, the warm
//! pool, fleet migrations and API tokens. Requests refuse unknown fields.

use serde::{Deserialize, Serialize};
use tenantry_core::{Compute, Engine, Isolation};
use utoipa::ToSchema;
use uuid::Uuid;

/// A plan of the configuration and its defaults.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub name: String,
    pub isolation: Isolation,
    pub compute: Compute,
    pub storage_quota_mb: u64,
    pub description: String,
}

/// `POST /api/v1/shards`: a shard registered at run time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddShard {
    /// a-z, 0-9 and '-', starting with a letter.
    pub name: String,
    /// The region it serves.
    pub region: String,
    pub engine: Engine,
    /// Admin connection URL (postgres).
    #[serde(default)]
    pub url: Option<String>,
    /// Directory of tenant files (sqlite), absolute on the server's machine.
    #[serde(default)]
    pub directory: Option<String>,
    /// How many tenant databases it may hold.
    pub capacity: u32,
}

/// `POST /api/v1/pool/fill`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FillPool {
    pub shard: String,
    /// How many databases to create (1–1000).
    pub count: u32,
}

/// Databases of the warm pool on one shard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoolCount {
    pub shard: String,
    /// Created, waiting for a tenant.
    pub available: i64,
    /// Handed to a tenant.
    pub claimed: i64,
}

/// The answer to `POST /api/v1/pool/fill`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoolFilled {
    pub created: u32,
    pub pool: Vec<PoolCount>,
}

/// `POST /api/v1/migrations`: a fleet migration. Empty filters select every tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateFleet {
    /// Only these tenants (slugs).
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// How many spaces to migrate at once (1–64).
    pub concurrency: usize,
    /// List the migrations that would run; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What happened to one space in a fleet migration: `result` is `migrated` (with `from` and
/// `to`), `up_to_date` (`version`), `would_apply` (`migrations`: `[version, description]`
/// pairs) or `failed` (`error`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SpaceResult {
    /// The tenant, or `shared:<shard>` for a shared database.
    pub label: String,
    pub isolation: Isolation,
    pub shard: String,
    /// The tenants whose data the space holds.
    pub tenants: Vec<String>,
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<serde_json::Value>>>)]
    pub migrations: Option<Vec<(i64, String)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub took_ms: u64,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `admin`, `operator` or `reader`.
    pub scope: String,
    /// A name to recognise and revoke it by; `<scope>-<random>` when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// An API token, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub name: String,
    pub scope: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer token; the catalog keeps only its hash.
    pub token: String,
    pub name: String,
    pub scope: String,
}

/// A tenant past a growth threshold, and the move it is advised (`GET /api/v1/placement/recommendations`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlacementAdvice {
    pub slug: String,
    pub isolation: String,
    /// The isolation it is advised to move to.
    pub advised: String,
    /// The figure that crossed a threshold, e.g. `12000 customers ≥ 10000`.
    pub reason: String,
    /// Rows over all its tables, and its data's size, as last collected.
    pub rows: i64,
    pub size_bytes: i64,
    /// The command that makes the move.
    pub command: String,
}
