//! `/healthz` (the process answers) and `/readyz` (it can reach its catalog). Both are open, so
//! that load balancers and orchestrators need no token.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the catalog answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = String), (status = 503, body = String)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.orch.catalog().shards().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the catalog does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "catalog unavailable")
        }
    }
}
