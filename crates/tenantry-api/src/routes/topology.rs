//! `/api/v1/regions` and `/api/v1/shards`: where tenants can live, and the room left.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::State;
use tenantry_api_types::responses::{Region, Shard};

/// Every shard with its capacity, room left and live tenants.
#[utoipa::path(get, path = "/api/v1/shards", tag = "topology",
    responses((status = 200, body = [Shard])), security(("bearer" = ["reader"])))]
pub async fn shards(State(state): State<AppState>) -> Result<axum::Json<Vec<Shard>>, Problem> {
    Ok(axum::Json(views::shards(&state.orch).await?))
}

/// Every region with its shards.
#[utoipa::path(get, path = "/api/v1/regions", tag = "topology",
    responses((status = 200, body = [Region])), security(("bearer" = ["reader"])))]
pub async fn regions(State(state): State<AppState>) -> Result<axum::Json<Vec<Region>>, Problem> {
    Ok(axum::Json(views::regions(&state.orch).await?))
}
