//! `/api/v1/tenants`: create (or plan), list, show, suspend, resume, delete, history.

use super::ApiJson;
use crate::auth::{Caller, hash_token};
use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenantry_api_types::requests::CreateTenant;
use tenantry_api_types::responses::{Accepted, ProvisionPlan, Tenant, TenantPage, Transition};
use tenantry_catalog::model::{IdempotentResponse, Operation, OperationKind, TenantFilter};
use tenantry_core::{Isolation, TenantState};
use tenantry_orchestrator::ProvisionRequest;
use utoipa::IntoParams;

fn accepted_body(op: &Operation, slug: &str) -> Accepted {
    Accepted {
        operation_id: op.id,
        operation_url: format!("/api/v1/operations/{}", op.id),
        tenant_id: op.tenant_id.0,
        tenant_slug: slug.to_owned(),
    }
}

pub(crate) fn accepted(op: &Operation, slug: &str) -> Response {
    let body = accepted_body(op, slug);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, body.operation_url.clone())],
        axum::Json(body),
    )
        .into_response()
}

/// Create a tenant; with `dry_run`, return the placement it would get.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 202, description = "Provisioning queued", body = Accepted),
        (status = 200, description = "Dry run: the plan", body = ProvisionPlan),
        (status = 409, description = "Slug taken, or no room", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid request", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, Problem> {
    let Some(key) = headers.get("idempotency-key") else {
        return create_once(&state, &caller, body).await.map(respond);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            Problem::invalid("Idempotency-Key", "use 1 to 255 visible ASCII characters")
        })?;
    let request_hash = hash_token(&serde_json::to_string(&body).unwrap_or_default());
    let catalog = state.orch.catalog();
    if let Some(first) = catalog.idempotent_response(key).await? {
        return replay(first, &request_hash);
    }
    let response = create_once(&state, &caller, body).await;
    let (status, value) = match &response {
        Ok((status, value)) => (*status, value.clone()),
        Err(problem) => (
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            serde_json::to_value(problem).unwrap_or_default(),
        ),
    };
    if status.is_server_error() {
        // A failure of ours is not an answer to remember: a retry should try again.
        return response.map(respond);
    }
    let first = catalog
        .save_idempotent_response(IdempotentResponse {
            key: key.to_owned(),
            request_hash: request_hash.clone(),
            status: status.as_u16(),
            body: value,
        })
        .await?;
    replay(first, &request_hash)
}

/// Answers with a recorded response, unless the key was used for another request.
fn replay(first: IdempotentResponse, request_hash: &str) -> Result<Response, Problem> {
    if first.request_hash != request_hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "The Idempotency-Key was used for another request",
            "send a new Idempotency-Key for a different request",
        )
        .with_field("Idempotency-Key"));
    }
    let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
    Ok(respond((status, first.body)))
}

/// A recorded or fresh answer as a response: problems keep their media type, accepted
/// operations their `Location`.
fn respond((status, body): (StatusCode, serde_json::Value)) -> Response {
    let location = body["operation_url"]
        .as_str()
        .and_then(|u| axum::http::HeaderValue::from_str(u).ok());
    let mut response = (status, axum::Json(body)).into_response();
    if status.is_client_error() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
    }
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn create_once(
    state: &AppState,
    caller: &Caller,
    body: CreateTenant,
) -> Result<(StatusCode, serde_json::Value), Problem> {
    let isolation = body
        .isolation
        .as_deref()
        .map(|i| i.parse::<Isolation>())
        .transpose()
        .map_err(|e| Problem::invalid("isolation", e.to_string()))?;
    let req = ProvisionRequest {
        slug: body.slug,
        plan: body.plan,
        region: body.region,
        compliance: body.compliance,
        members: body.members,
        monthly_api_calls: body.monthly_api_calls,
        isolation,
        admin_email: body.admin_email,
        domain: body.domain,
        aliases: body.aliases,
    };
    if body.dry_run {
        let plan = convert::provision_plan(state.orch.plan_provision(&req).await?);
        return Ok((
            StatusCode::OK,
            serde_json::to_value(plan).unwrap_or_default(),
        ));
    }
    let actor = format!("token:{}", caller.name);
    let (tenant, op) = state.orch.request_provision_by(&req, &actor).await?;
    state.work.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        serde_json::to_value(accepted_body(&op, &tenant.slug)).unwrap_or_default(),
    ))
}

/// Filters and paging of `GET /tenants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tenants in this state.
    pub state: Option<String>,
    /// Only tenants of this region.
    pub region: Option<String>,
    /// Only tenants of this isolation.
    pub isolation: Option<String>,
    /// Only tenants of this plan.
    pub plan: Option<String>,
    /// Include deleted tenants (default: only with `state=deleted`).
    pub include_deleted: Option<bool>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// List tenants (deleted ones only with `state=deleted`).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(ListQuery),
    responses((status = 200, body = TenantPage), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<TenantPage>, Problem> {
    let parse_state = q
        .state
        .as_deref()
        .map(str::parse::<TenantState>)
        .transpose()
        .map_err(|e| Problem::invalid("state", e.to_string()))?;
    let isolation = q
        .isolation
        .as_deref()
        .map(str::parse::<Isolation>)
        .transpose()
        .map_err(|e| Problem::invalid("isolation", e.to_string()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let offset: usize = match &q.cursor {
        Some(c) => c
            .parse()
            .map_err(|_| Problem::invalid("cursor", "use the next_cursor of a previous page"))?,
        None => 0,
    };
    let filter = TenantFilter {
        state: parse_state,
        region: q.region,
        isolation,
        plan: q.plan,
        include_deleted: q.include_deleted == Some(true)
            || parse_state == Some(TenantState::Deleted),
    };
    let all = state.orch.catalog().tenants(&filter).await?;
    let total = all.len();
    let items: Vec<Tenant> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(convert::tenant)
        .collect();
    let next = offset + items.len();
    Ok(axum::Json(TenantPage {
        items,
        next_cursor: (next < total).then(|| next.to_string()),
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = Tenant), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<Tenant>, Problem> {
    let t = state.orch.catalog().tenant_by_slug(&slug).await?;
    Ok(axum::Json(convert::tenant(t)))
}

/// The tenant's transitions, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/history", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = [Transition]), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn history(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<axum::Json<Vec<Transition>>, Problem> {
    let t = state.orch.catalog().tenant_by_slug(&slug).await?;
    let rows = state.orch.catalog().history(t.id).await?;
    Ok(axum::Json(
        rows.into_iter().map(convert::transition).collect(),
    ))
}

async fn change(
    state: AppState,
    caller: Caller,
    slug: String,
    kind: OperationKind,
) -> Result<Response, Problem> {
    let actor = format!("token:{}", caller.name);
    let (tenant, op) = state.orch.request_by(&slug, kind, &actor).await?;
    state.work.notify_one();
    Ok(accepted(&op, &tenant.slug))
}

/// Suspend a tenant (data and storage are kept).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/suspend", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 202, body = Accepted), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn suspend(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    change(state, caller, slug, OperationKind::Suspend).await
}

/// Resume a suspended tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/resume", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 202, body = Accepted), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    change(state, caller, slug, OperationKind::Resume).await
}

/// Delete a tenant: its space and storage are removed, its record kept (state `deleted`).
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 202, body = Accepted), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    change(state, caller, slug, OperationKind::Delete).await
}
