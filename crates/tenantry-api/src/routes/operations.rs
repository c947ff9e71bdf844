//! `/api/v1/operations/{id}`: an operation's steps and progress.

use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Path, State};
use tenantry_api_types::responses::Operation;
use uuid::Uuid;

/// One operation, with its steps.
#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "The operation's id")),
    responses((status = 200, body = Operation), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["reader"])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Operation>, Problem> {
    let id: Uuid = id
        .parse()
        .map_err(|_| Problem::not_found(format!("{id:?} is not an operation id")))?;
    let op = state.orch.catalog().operation(id).await?;
    Ok(axum::Json(convert::operation(op)))
}
