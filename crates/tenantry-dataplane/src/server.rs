//! The data plane's endpoint: `POST /internal/database/initialize`.
//!
//! Checks the signature before reading anything else, then that the space is one this data
//! plane serves and the very place its driver gives the tenant (a signed request still cannot
//! name an arbitrary database), then creates and migrates it — both idempotent, so a retried
//! call finds the space there and changes nothing but the role's password, which it answers
//! sealed. Errors are problem details: 401 for a signature, 422 for a request that cannot be
//! served, 503 for what may pass (the shard is unreachable).

use crate::protocol::{InitializeRequest, InitializeResponse};
use crate::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;
use tenantry_core::secrets::MasterKey;
use tenantry_engines::{SpaceError, Spaces};

/// Where the endpoint is mounted.
pub const INITIALIZE_PATH: &str = "/internal/database/initialize";

/// What the endpoint needs: the drivers of this data plane's shards, the master key that seals
/// credentials, and the verifier of the shared secret.
pub struct DataPlane {
    pub spaces: Spaces,
    pub master_key: MasterKey,
    pub verifier: Verifier,
}

impl DataPlane {
    /// The endpoint, as a router to serve or to merge into a service's own.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route(INITIALIZE_PATH, axum::routing::post(initialize))
            .with_state(Arc::new(self))
    }
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn space_problem(e: SpaceError) -> Response {
    let status = if e.is_transient() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    problem(status, e.to_string())
}

async fn initialize(
    State(plane): State<Arc<DataPlane>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = plane.verifier.verify(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now,
    ) {
        tracing::warn!(error = %e, "refused an initialize request");
        return problem(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let request: InitializeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not an initialize request: {e}"),
            );
        }
    };
    let (tenant, space) = (request.tenant_id, &request.space);
    let driver = match plane.spaces.driver(&space.shard) {
        Ok(d) => d,
        Err(_) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "shard {:?} is not one of this data plane's shards",
                    space.shard
                ),
            );
        }
    };
    match driver.locate(tenant, space.kind) {
        Ok(expected) if &expected == space => {}
        Ok(expected) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "tenant {tenant}'s {} space on {} is {expected:?}, not {space:?}",
                    space.kind, space.shard
                ),
            );
        }
        Err(e) => return space_problem(e),
    }
    let credentials = match driver.create(space).await {
        Ok(c) => c,
        Err(e) => return space_problem(e),
    };
    let schema_version = match driver.migrate(space).await {
        Ok(v) => v,
        Err(e) => return space_problem(e),
    };
    tracing::info!(%tenant, shard = space.shard, isolation = %space.kind, ?schema_version, "initialized a tenant's space");
    let sealed_credentials = credentials.map(|c| {
        base64::engine::general_purpose::STANDARD
            .encode(c.seal(&plane.master_key, &tenant.to_string()))
    });
    axum::Json(InitializeResponse {
        schema_version,
        sealed_credentials,
    })
    .into_response()
}
