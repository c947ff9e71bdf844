//! A tenant's own compute, licence and plan: `/api/v1/tenants/{slug}/compute`, `/licence`,
//! `/manifests`, and `PATCH /api/v1/tenants/{slug}` to change its plan.

use super::ApiJson;
use super::tenants::accepted;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use crate::{convert, views};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tenantry_api_types::requests::UpdateTenant;
use tenantry_api_types::responses::{TenantCompute, TenantLicence};
use tenantry_orchestrator::plan_change::PlanChangeStarted;

/// The tenant's own compute: its runtime, state and endpoint (nothing for shared compute).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/compute", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = TenantCompute), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<TenantCompute>, Problem> {
    let tenant = state.orch.catalog().tenant_by_slug(&slug).await?;
    Ok(axum::Json(views::compute(&state.orch, &tenant).await?))
}

/// The tenant's licence, verified with the installation's public key, with its contents and
/// where it disagrees with the tenant's plan.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/licence", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = TenantLicence), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn licence(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<TenantLicence>, Problem> {
    let tenant = state.orch.catalog().tenant_by_slug(&slug).await?;
    Ok(axum::Json(views::licence(&state.orch, &tenant).await?))
}

/// The Kubernetes objects of the tenant's compute as YAML, secret values redacted.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/manifests", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = String, content_type = "application/yaml"), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn manifests(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    let tenant = state.orch.catalog().tenant_by_slug(&slug).await?;
    let yaml = state.orch.manifests(&tenant).await?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response())
}

/// Change the tenant's plan: placement runs again; a change of isolation answers `202` with
/// the move, a change of compute or quota `202` with the update; the same plan answers `200`
/// with the tenant.
#[utoipa::path(patch, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    request_body = UpdateTenant,
    responses((status = 202, body = tenantry_api_types::responses::Accepted),
        (status = 200, description = "Nothing to change", body = tenantry_api_types::responses::Tenant),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Response, Problem> {
    let actor = format!("token:{}", caller.name);
    let (tenant, started) = state
        .orch
        .request_plan_change(&slug, &body.plan, &actor)
        .await?;
    Ok(match started {
        PlanChangeStarted::Unchanged => axum::Json(convert::tenant(tenant)).into_response(),
        PlanChangeStarted::Update(op) | PlanChangeStarted::Move(op) => {
            state.work.notify_one();
            accepted(&op, &tenant.slug)
        }
    })
}
