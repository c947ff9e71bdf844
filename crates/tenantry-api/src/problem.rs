//! Errors as RFC 9457 `application/problem+json`, mapped from every layer in one place.
//!
//! Each kind of error has a stable `type` URI (`https://tenantry.dev/problems/<kind>`) that
//! clients can match on, a `title` for that kind, and a `detail` saying what to change.
//! Internal failures say only that something failed and where to look: the cause is logged,
//! not sent.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tenantry_catalog::CatalogError;
use tenantry_orchestrator::OrchestratorError;
use utoipa::ToSchema;

/// A problem detail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://tenantry.dev/problems/{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "The request is invalid",
            detail,
        )
        .with_field(field)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The token's scope does not allow this",
            detail,
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the control plane failed to handle the request; its logs have the cause — retry later",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("field"))
            .map(str::to_owned);
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut p = Problem::new(status, "invalid-body", "The request body is invalid", text);
        p.field = field;
        p
    }
}

impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Self {
        match &e {
            CatalogError::DuplicateSlug(_) => Problem::new(
                StatusCode::CONFLICT,
                "duplicate-slug",
                "The slug is taken",
                e.to_string(),
            )
            .with_field("slug"),
            CatalogError::DomainTaken { .. } => Problem::new(
                StatusCode::CONFLICT,
                "domain-taken",
                "The domain belongs to another tenant",
                e.to_string(),
            )
            .with_field("domain"),
            CatalogError::TenantNotFound(_)
            | CatalogError::DomainNotFound(_)
            | CatalogError::OperationNotFound(_)
            | CatalogError::ShardNotFound(_)
            | CatalogError::TokenNotFound(_) => Problem::not_found(e.to_string()),
            CatalogError::DuplicateShard(_) | CatalogError::DuplicateToken(_) => Problem::new(
                StatusCode::CONFLICT,
                "duplicate-name",
                "The name is taken",
                e.to_string(),
            )
            .with_field("name"),
            CatalogError::OperationInProgress { .. } => Problem::new(
                StatusCode::CONFLICT,
                "operation-in-progress",
                "Another operation is under way",
                e.to_string(),
            ),
            CatalogError::IllegalTransition(_) => Problem::new(
                StatusCode::CONFLICT,
                "illegal-transition",
                "The tenant's state does not allow this",
                e.to_string(),
            ),
            _ => {
                tracing::error!(error = %e, "catalog failure");
                Problem::internal()
            }
        }
    }
}

impl From<OrchestratorError> for Problem {
    fn from(e: OrchestratorError) -> Self {
        match e {
            OrchestratorError::Catalog(c) => c.into(),
            OrchestratorError::Slug(s) => Problem::invalid("slug", s.to_string()),
            OrchestratorError::Placement(p) => {
                let field = if p.to_string().starts_with("unknown plan") {
                    "plan"
                } else {
                    "isolation"
                };
                Problem::invalid(field, p.to_string())
            }
            OrchestratorError::InvalidRequest(m) => {
                let field = ["region", "compliance", "admin email", "domain"]
                    .into_iter()
                    .find(|f| m.contains(f))
                    .map(|f| f.replace(' ', "_"))
                    .unwrap_or_else(|| "body".into());
                Problem::invalid(&field, m)
            }
            OrchestratorError::Resolve(r) => Problem::new(
                StatusCode::CONFLICT,
                "no-room",
                "No shard can take the tenant",
                r.to_string(),
            ),
            OrchestratorError::LeaseHeld(_) => Problem::new(
                StatusCode::CONFLICT,
                "operation-in-progress",
                "Another worker runs this operation",
                e.to_string(),
            ),
            other => {
                tracing::error!(error = %other, "orchestrator failure");
                Problem::internal()
            }
        }
    }
}
