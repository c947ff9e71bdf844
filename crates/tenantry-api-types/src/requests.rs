//! Request bodies. Unknown fields are refused, so that a typo is an error, not a silent default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 2–63 characters of a-z, 0-9 and '-', starting with a letter.
    #[schema(example = "acme")]
    pub slug: String,
    /// A plan of the configuration (`GET /api/v1/plans`).
    #[schema(example = "standard")]
    pub plan: String,
    /// A region of the configuration (`GET /api/v1/regions`).
    #[schema(example = "eu-west")]
    pub region: String,
    /// Compliance tags (`hipaa`, `gdpr`, `pci`, `sox`, …).
    #[serde(default)]
    pub compliance: Vec<String>,
    /// Number of members (users) the tenant has.
    #[serde(default)]
    pub members: u64,
    /// API calls the tenant makes a month.
    #[serde(default)]
    pub monthly_api_calls: u64,
    /// The bootstrap admin's email; `admin@<slug>.example` when absent.
    #[serde(default)]
    pub admin_email: Option<String>,
    /// An operator's override of the isolation: `shared`, `schema` or `database`.
    #[serde(default)]
    pub isolation: Option<String>,
    /// The tenant's primary host name (free of other tenants).
    #[serde(default)]
    #[schema(example = "acme.example")]
    pub domain: Option<String>,
    /// More host names of the tenant; they need a primary.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Decide and return the placement without creating anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a tenant's infrastructure is made of: the seeds' keys, and any further ones the tier's
/// module declares (passed as Terraform variables in snake case: `storageGb` → `storage_gb`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureConfiguration {
    /// The database's size class, e.g. `Standard_D2s_v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Standard_D2s_v3")]
    pub database_size: Option<String>,
    /// Storage to provision, in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 100)]
    pub storage_gb: Option<u64>,
    /// Whether the tenant's resources are highly available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ha: Option<bool>,
    /// Further keys for the tier's module.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/v1/infrastructure/tenants/{tenantId}/provision` (the seeds' request).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisionInfrastructure {
    /// The tier, whose module (`<modules>/<tier>/`, else `<modules>/default/`) is applied.
    #[schema(example = "professional")]
    pub tier: String,
    /// The tenant's own region (a tenant's infrastructure never leaves it).
    #[schema(example = "eu-west")]
    pub region: String,
    /// `AZURE`, `AWS`, `GCP` or `LOCAL`.
    #[schema(example = "AZURE")]
    pub cloud_provider: String,
    pub configuration: InfrastructureConfiguration,
    /// Plan only: answer with what would change, record and apply nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `PUT /api/v1/infrastructure/tenants/{tenantId}`: the new configuration (and tier).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateInfrastructure {
    /// A new tier; the current one when absent.
    #[serde(default)]
    pub tier: Option<String>,
    pub configuration: InfrastructureConfiguration,
    /// Plan only: answer with what would change, record and apply nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A tenant's new host names (`PUT /api/v1/tenants/{slug}/domains`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDomains {
    #[serde(default)]
    #[schema(example = "acme.example")]
    pub primary: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `POST /api/v1/tenants/{slug}/move`: move the tenant's data live (`to`, and `shard`), or end
/// its last move (`complete`: remove the old place's data; `rollback`: back to the old place
/// with the changes made since), or stop the move under way before its switch (`cancel`: the
/// target is removed). Exactly one of `to`, `complete`, `rollback` and `cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveTenant {
    /// `shared`, `schema` or `database`.
    #[serde(default)]
    #[schema(example = "database")]
    pub to: Option<String>,
    /// A shard of the tenant's region (of `region`, when given) [default: as for a new tenant
    /// of that isolation].
    #[serde(default)]
    pub shard: Option<String>,
    /// Another region: a residency change, recorded as such; the tenant's storage follows.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub rollback: bool,
    #[serde(default)]
    pub cancel: bool,
}

/// A change of a tenant's plan: placement runs again; a change of isolation becomes a live
/// move, a change of compute or quota an update.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[schema(example = "enterprise")]
    pub plan: String,
}
