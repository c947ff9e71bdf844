//! `/api/v1/pool`: the warm pool of migrated, empty databases (PostgreSQL shards).
//!
//! Filling runs within the request and answers when every database is ready: it creates
//! databases one after another (each a few hundred milliseconds), is bounded by `count`, and a
//! client that gives up loses nothing — the databases made so far stay in the pool.

use super::ApiJson;
use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::State;
use tenantry_api_types::admin::{FillPool, PoolCount, PoolFilled};

/// Largest `count` of one fill.
pub const MAX_FILL: u32 = 1000;

/// Databases waiting in the pool and handed out, per shard.
#[utoipa::path(get, path = "/api/v1/pool", tag = "topology",
    responses((status = 200, body = [PoolCount])), security(("bearer" = ["reader"])))]
pub async fn status(State(state): State<AppState>) -> Result<axum::Json<Vec<PoolCount>>, Problem> {
    let rows = state.orch.catalog().pool_status().await?;
    Ok(axum::Json(
        rows.into_iter().map(convert::pool_count).collect(),
    ))
}

/// Create `count` databases on a shard ahead of time; answers when they are ready.
#[utoipa::path(post, path = "/api/v1/pool/fill", tag = "topology", request_body = FillPool,
    responses((status = 200, body = PoolFilled), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn fill(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FillPool>,
) -> Result<axum::Json<PoolFilled>, Problem> {
    if !(1..=MAX_FILL).contains(&body.count) {
        return Err(Problem::invalid(
            "count",
            format!("count must be between 1 and {MAX_FILL}"),
        ));
    }
    let created = state
        .orch
        .fill_pool(&body.shard, body.count, &|_| {})
        .await?;
    let pool = state.orch.catalog().pool_status().await?;
    Ok(axum::Json(PoolFilled {
        created,
        pool: pool.into_iter().map(convert::pool_count).collect(),
    }))
}
