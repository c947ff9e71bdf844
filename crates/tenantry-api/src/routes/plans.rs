//! `/api/v1/plans`: the plans of the configuration and their defaults; and
//! `/api/v1/placement/recommendations`: the tenants that outgrew theirs.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::{Query, State};
use tenantry_api_types::admin::{PlacementAdvice, Plan};

/// Every plan with its isolation, compute and storage quota.
#[utoipa::path(get, path = "/api/v1/plans", tag = "topology",
    responses((status = 200, body = [Plan])), security(("bearer" = ["reader"])))]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<Plan>>, Problem> {
    Ok(axum::Json(views::plans(state.orch.config())))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct AdviceQuery {
    /// Collect every tenant's statistics first (counts rows: slow on large spaces).
    #[serde(default)]
    pub refresh: bool,
}

/// Active tenants past a growth threshold (`placement.growth`), with the move each is advised;
/// tenants pinned by a placement override are left out.
#[utoipa::path(get, path = "/api/v1/placement/recommendations", tag = "topology",
    params(AdviceQuery),
    responses((status = 200, body = [PlacementAdvice])), security(("bearer" = ["reader"])))]
pub async fn recommendations(
    State(state): State<AppState>,
    Query(query): Query<AdviceQuery>,
) -> Result<axum::Json<Vec<PlacementAdvice>>, Problem> {
    Ok(axum::Json(
        views::placement_advice(&state.orch, query.refresh).await?,
    ))
}
