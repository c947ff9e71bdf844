//! `/api/v1/regions` and `/api/v1/shards`: where tenants can live, and the room left.

use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::State;
use tenantry_api_types::responses::{Region, Shard};
use tenantry_core::shard::ShardState;

/// Every shard with its capacity and room left.
#[utoipa::path(get, path = "/api/v1/shards", tag = "topology",
    responses((status = 200, body = [Shard])), security(("bearer" = ["reader"])))]
pub async fn shards(State(state): State<AppState>) -> Result<axum::Json<Vec<Shard>>, Problem> {
    let shards = state.orch.catalog().shards().await?;
    Ok(axum::Json(shards.into_iter().map(convert::shard).collect()))
}

/// Every region with its shards.
#[utoipa::path(get, path = "/api/v1/regions", tag = "topology",
    responses((status = 200, body = [Region])), security(("bearer" = ["reader"])))]
pub async fn regions(State(state): State<AppState>) -> Result<axum::Json<Vec<Region>>, Problem> {
    let shards = state.orch.catalog().shards().await?;
    let config = state.orch.config();
    let regions = config
        .regions
        .keys()
        .map(|name| {
            let own: Vec<_> = shards.iter().filter(|s| &s.region == name).collect();
            Region {
                name: name.clone(),
                shared_shard: config.shared_shard(name).map(|s| s.name.clone()),
                shards: own.iter().map(|s| s.name.clone()).collect(),
                room_left: own
                    .iter()
                    .filter(|s| s.state == ShardState::Active)
                    .map(|s| s.capacity.saturating_sub(s.used))
                    .sum(),
            }
        })
        .collect();
    Ok(axum::Json(regions))
}
