//! `/api/v1/tokens`: API tokens (admin scope). A new token's secret is in the answer to its
//! creation and nowhere else; the catalog keeps its hash.

use super::ApiJson;
use crate::auth::Scope;
use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tenantry_api_types::admin::{CreateToken, CreatedToken, Token};

/// Create a token; its secret is shown once, in this answer.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), Problem> {
    let scope: Scope = body
        .scope
        .parse()
        .map_err(|e: String| Problem::invalid("scope", e))?;
    let name = body
        .name
        .unwrap_or_else(|| crate::tokens::default_name(scope));
    let (token, plain) = crate::tokens::issue(state.orch.catalog().as_ref(), &name, scope).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            token: plain,
            name: token.name,
            scope: token.scope,
        }),
    ))
}

/// Every token, revoked ones too, never with its secret.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [Token])), security(("bearer" = ["admin"])))]
pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<Token>>, Problem> {
    let tokens = state.orch.catalog().tokens().await?;
    Ok(axum::Json(tokens.into_iter().map(convert::token).collect()))
}

/// Revoke a token by name: requests with it are refused from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 200, body = Token), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Token>, Problem> {
    let token = state.orch.catalog().revoke_token(&name).await?;
    Ok(axum::Json(convert::token(token)))
}
