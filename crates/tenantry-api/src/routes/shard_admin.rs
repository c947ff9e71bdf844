//! `POST /api/v1/shards…`: registering shards at run time, draining and activating them
//! (admin scope: where tenants may be placed).

use super::ApiJson;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tenantry_api_types::admin::AddShard;
use tenantry_api_types::responses::Shard;
use tenantry_core::config::ShardConfig;
use tenantry_core::shard::ShardState;

/// Register a shard, checked the way the configuration's shards are.
#[utoipa::path(post, path = "/api/v1/shards", tag = "topology", request_body = AddShard,
    responses((status = 201, body = Shard), (status = 409, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddShard>,
) -> Result<(StatusCode, axum::Json<Shard>), Problem> {
    let shard = state
        .orch
        .add_shard(ShardConfig {
            name: body.name,
            region: body.region,
            engine: body.engine,
            url: body.url,
            directory: body.directory.map(Into::into),
            capacity: body.capacity,
            state: ShardState::Active,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(views::shard(&state.orch, &shard.name).await?),
    ))
}

async fn set_state(
    state: AppState,
    name: String,
    to: ShardState,
) -> Result<axum::Json<Shard>, Problem> {
    let shard = state.orch.set_shard_state(&name, to).await?;
    Ok(axum::Json(views::shard(&state.orch, &shard.name).await?))
}

/// Place no new tenants on the shard; its tenants stay.
#[utoipa::path(post, path = "/api/v1/shards/{name}/drain", tag = "topology",
    params(("name" = String, Path, description = "The shard's name")),
    responses((status = 200, body = Shard), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn drain(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Shard>, Problem> {
    set_state(state, name, ShardState::Draining).await
}

/// Let a drained shard take new tenants again.
#[utoipa::path(post, path = "/api/v1/shards/{name}/activate", tag = "topology",
    params(("name" = String, Path, description = "The shard's name")),
    responses((status = 200, body = Shard), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn activate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Shard>, Problem> {
    set_state(state, name, ShardState::Active).await
}
