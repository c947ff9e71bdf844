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
    /// Decide and return the placement without creating anything.
    #[serde(default)]
    pub dry_run: bool,
}
