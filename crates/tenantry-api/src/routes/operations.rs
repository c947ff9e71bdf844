//! `/api/v1/operations`: operations with their steps and progress, and resuming one whose
//! worker died.

use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenantry_api_types::responses::{Accepted, Operation};
use tenantry_orchestrator::NoProgress;
use utoipa::IntoParams;
use uuid::Uuid;

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("{id:?} is not an operation id")))
}

/// Filters of `GET /operations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// Only this tenant's operations (slug).
    pub tenant: Option<String>,
    /// Only operations not finished (pending, running, rolling back), oldest first.
    pub open: Option<bool>,
    /// At most this many, newest first (1–1000, default 50).
    pub limit: Option<i64>,
}

/// Recent operations, newest first; with `open=true`, the unfinished ones, oldest first.
#[utoipa::path(get, path = "/api/v1/operations", tag = "operations", params(OperationsQuery),
    responses((status = 200, body = [Operation]), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<OperationsQuery>,
) -> Result<axum::Json<Vec<Operation>>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let ops = if q.open == Some(true) {
        let mut open = state.orch.open_operations().await?;
        if let Some(slug) = &q.tenant {
            let id = state.orch.catalog().tenant_by_slug(slug).await?.id;
            open.retain(|op| op.tenant_id == id);
        }
        open.truncate(limit as usize);
        open
    } else {
        let tenant = match &q.tenant {
            Some(slug) => Some(state.orch.catalog().tenant_by_slug(slug).await?.id),
            None => None,
        };
        state.orch.catalog().operations(tenant, limit).await?
    };
    Ok(axum::Json(
        ops.into_iter().map(convert::operation).collect(),
    ))
}

/// One operation, with its steps.
#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "The operation's id")),
    responses((status = 200, body = Operation), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Operation>, Problem> {
    let op = state.orch.catalog().operation(parse_id(&id)?).await?;
    let plan = state.orch.operation_plan(&op).await?;
    let op = convert::operation_with_plan(op, plan).map_err(|e| {
        tracing::error!(error = %e, "a plan summary does not have its wire shape");
        Problem::internal()
    })?;
    Ok(axum::Json(op))
}

/// Continue an interrupted operation on this server: at once when its lease is free, expired
/// or held by a dead worker of this host, else when the lease expires. Answers `202` with the
/// operation's URL to follow; a finished operation is answered as it is, `200`.
///
/// The run is not tied to the request: the operation's lease makes sure one worker runs it,
/// and when this process stops, the lease lapses and another worker (or `tenantry ops resume`)
/// continues from the last checkpoint.
#[utoipa::path(post, path = "/api/v1/operations/{id}/resume", tag = "operations",
    params(("id" = Uuid, Path, description = "The operation's id")),
    responses(
        (status = 202, description = "Resuming", body = Accepted),
        (status = 200, description = "Already finished", body = Operation),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let op = state.orch.catalog().operation(parse_id(&id)?).await?;
    if !op.state.is_open() {
        return Ok(axum::Json(convert::operation(op)).into_response());
    }
    let tenant = state.orch.catalog().tenant(op.tenant_id).await?;
    let orch = state.orch.clone();
    let id = op.id;
    tokio::spawn(async move {
        match orch.resume(id, &NoProgress, true).await {
            Ok(op) => {
                tracing::info!(operation = %id, state = %op.state, "resumed operation finished")
            }
            Err(e) => {
                tracing::warn!(operation = %id, error = %e, "resumed operation did not succeed")
            }
        }
    });
    let url = format!("/api/v1/operations/{id}");
    let body = Accepted {
        operation_id: id,
        operation_url: url.clone(),
        tenant_id: op.tenant_id.0,
        tenant_slug: tenant.slug,
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url)],
        axum::Json(body),
    )
        .into_response())
}
