//! `/api/v1/plans`: the plans of the configuration and their defaults.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::State;
use tenantry_api_types::admin::Plan;

/// Every plan with its isolation, compute and storage quota.
#[utoipa::path(get, path = "/api/v1/plans", tag = "topology",
    responses((status = 200, body = [Plan])), security(("bearer" = ["reader"])))]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<Plan>>, Problem> {
    Ok(axum::Json(views::plans(state.orch.config())))
}
