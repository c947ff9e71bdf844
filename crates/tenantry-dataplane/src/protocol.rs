//! What a control plane asks of a data plane, and what it answers.

use serde::{Deserialize, Serialize};
use tenantry_core::TenantId;
use tenantry_core::space::Space;

/// `POST /internal/database/initialize`: create the tenant's space (where the control plane
/// placed it) and migrate it to the latest version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitializeRequest {
    pub tenant_id: TenantId,
    /// Where the tenant lives: the data plane checks it is one of its shards and the place its
    /// driver would give the tenant.
    pub space: Space,
    /// Random per request: two requests never share a signature.
    pub nonce: String,
}

/// The data plane's answer: the space is there, at `schema_version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    pub schema_version: Option<i64>,
    /// For a database of its own: the role's credentials, sealed with the master key for the
    /// tenant (base64), so that they cross the wire and reach the catalog never in the clear.
    pub sealed_credentials: Option<String>,
}
