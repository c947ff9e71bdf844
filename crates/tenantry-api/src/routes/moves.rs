//! `POST /api/v1/tenants/{slug}/move`: live moves, ending them (complete or roll back), and
//! cancelling one under way.

use super::ApiJson;
use super::tenants::accepted;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use tenantry_api_types::requests::MoveTenant;
use tenantry_core::Isolation;

/// Move a tenant's data live to another isolation or shard of its region, or end its last move.
/// Answers `202` with the operation to follow; the server's worker runs it.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/move", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    request_body = MoveTenant,
    responses((status = 202, body = tenantry_api_types::responses::Accepted),
        (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["operator"])))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<MoveTenant>,
) -> Result<Response, Problem> {
    let actor = format!("token:{}", caller.name);
    let chosen = [body.to.is_some(), body.complete, body.rollback, body.cancel]
        .into_iter()
        .filter(|b| *b)
        .count();
    if chosen != 1 {
        return Err(Problem::invalid(
            "to",
            "give exactly one of `to` (shared, schema or database), `complete`, `rollback` and `cancel`",
        ));
    }
    let (tenant, op) = if body.complete {
        state.orch.request_move_complete(&slug, &actor).await?
    } else if body.rollback {
        state.orch.request_move_rollback(&slug, &actor).await?
    } else if body.cancel {
        state.orch.request_move_cancel(&slug, &actor).await?
    } else {
        let to: Isolation = body.to.as_deref().unwrap_or_default().parse().map_err(
            |e: tenantry_core::isolation::UnknownValue| Problem::invalid("to", e.to_string()),
        )?;
        state
            .orch
            .request_move_to(
                &slug,
                to,
                body.shard.as_deref(),
                body.region.as_deref(),
                &actor,
            )
            .await?
    };
    state.work.notify_one();
    Ok(accepted(&op, &tenant.slug))
}
