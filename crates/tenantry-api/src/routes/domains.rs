//! Tenants' host names: `GET`/`PUT /api/v1/tenants/{slug}/domains`, and resolving a host to its
//! tenant with `GET /api/v1/domains/{host}` (what a router or an ingress asks).

use super::ApiJson;
use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Path, State};
use tenantry_api_types::requests::SetDomains;
use tenantry_api_types::responses::{Domains, Tenant};
use tenantry_core::domain::Domain;

/// A tenant's primary domain and aliases.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/domains", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = Domains), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<Domains>, Problem> {
    let tenant = state.orch.catalog().tenant_by_slug(&slug).await?;
    let domains = state.orch.catalog().domains(tenant.id).await?;
    Ok(axum::Json(convert::domains(domains)))
}

/// Replace a tenant's domains: names are normalised (lower case, no trailing dot); a name
/// another tenant has is refused with 409 and nothing changes. No primary and no aliases
/// removes them all.
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/domains", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    request_body = SetDomains,
    responses((status = 200, body = Domains), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A name belongs to another tenant", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn set(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<SetDomains>,
) -> Result<axum::Json<Domains>, Problem> {
    let domains = state
        .orch
        .set_domains(&slug, body.primary.as_deref(), &body.aliases)
        .await?;
    Ok(axum::Json(convert::domains(domains)))
}

/// The tenant a host name (a request's `Host`, port allowed) belongs to.
#[utoipa::path(get, path = "/api/v1/domains/{host}", tag = "tenants",
    params(("host" = String, Path, description = "A host name, e.g. shop.acme.example or shop.acme.example:8443")),
    responses((status = 200, body = Tenant), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn resolve(
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> Result<axum::Json<Tenant>, Problem> {
    let domain = Domain::from_host(&host).map_err(|e| Problem::invalid("host", e.to_string()))?;
    let tenant = state.orch.catalog().tenant_by_domain(&domain).await?;
    Ok(axum::Json(convert::tenant(tenant)))
}
