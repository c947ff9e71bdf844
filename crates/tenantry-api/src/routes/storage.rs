//! `/api/v1/tenants/{slug}/storage` and `/stats`: a tenant's storage prefix and usage, and what
//! its space holds.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::Query;
use axum::extract::{Path, State};
use tenantry_api_types::responses::{TenantStats, TenantStorage};

/// The tenant's storage prefix, whether it exists, its objects and bytes, and the quota.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/storage", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = TenantStorage), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<TenantStorage>, Problem> {
    let tenant = state.orch.catalog().tenant_by_slug(&slug).await?;
    Ok(axum::Json(views::storage(&state.orch, &tenant).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct StatsQuery {
    /// Collect rows and size from the tenant's space now rather than answer the last figures.
    #[serde(default)]
    pub refresh: bool,
}

/// The tenant's rows per table and data size (collected from its space; at once when never
/// collected or `refresh=true`), and its router's query count and mean time.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/stats", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug"), StatsQuery),
    responses((status = 200, body = TenantStats), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn stats(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<TenantStats>, Problem> {
    let stats = state.orch.tenant_stats(&slug, query.refresh).await?;
    Ok(axum::Json(crate::convert::tenant_stats(stats)))
}
