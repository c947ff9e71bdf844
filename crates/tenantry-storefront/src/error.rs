//! The storefront's errors, and the HTTP answer each becomes (`application/problem+json`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tenantry_router::{RouteError, RouterError};

/// What a storefront request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request's body or path is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such row of the tenant's.
    #[error("no {0} with this id")]
    NotFound(&'static str),
    /// The row conflicts with one the tenant has (a duplicate email, say).
    #[error("{0}")]
    Conflict(String),
    /// The tenant's key-value store is not configured.
    #[error("this storefront has no Redis (start it with --redis URL or REDIS_URL)")]
    NoRedis,
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Reaching the tenant's data failed.
    #[error(transparent)]
    Router(#[from] RouterError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error().map(|d| d.kind()) {
            Some(sqlx::error::ErrorKind::UniqueViolation) => {
                StoreError::Conflict(format!("already exists: {}", e))
            }
            Some(sqlx::error::ErrorKind::ForeignKeyViolation) => {
                StoreError::Invalid(format!("refers to a row that does not exist: {e}"))
            }
            Some(sqlx::error::ErrorKind::CheckViolation) => {
                StoreError::Invalid(format!("a value is out of range: {e}"))
            }
            _ => StoreError::Router(RouterError::Database(e)),
        }
    }
}

impl RouteError for StoreError {
    fn is_paused_for_move(&self) -> bool {
        matches!(self, StoreError::Router(e) if e.is_paused_for_move())
    }

    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Router(e) if e.is_conflict())
    }
}

impl StoreError {
    fn status(&self) -> StatusCode {
        match self {
            StoreError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::NoRedis => StatusCode::NOT_IMPLEMENTED,
            StoreError::Redis(_) => StatusCode::BAD_GATEWAY,
            StoreError::Router(e) => match e {
                RouterError::UnknownTenant(_) => StatusCode::NOT_FOUND,
                RouterError::NoTenant => StatusCode::BAD_REQUEST,
                RouterError::Suspended { .. } => StatusCode::FORBIDDEN,
                RouterError::NotServing { .. } => StatusCode::CONFLICT,
                RouterError::Moving { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Not the answers that say how this storefront runs (no Redis) or that a move is on.
        if matches!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR | StatusCode::BAD_GATEWAY
        ) {
            tracing::error!(error = %self, "storefront request failed");
        }
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
