//! `/api/v1/tenants/{slug}/storage`: a tenant's storage prefix and its usage.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::{Path, State};
use tenantry_api_types::responses::TenantStorage;

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
