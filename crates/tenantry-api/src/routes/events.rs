//! `/api/v1/events`: the outbox, read from a cursor.

use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::{Query, State};
use serde::Deserialize;
use tenantry_api_types::responses::EventPage;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this `seq` (default 0: from the start).
    pub after: Option<i64>,
    /// Only this tenant's events (slug).
    pub tenant: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

/// Events in outbox order.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventPage), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["reader"])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<axum::Json<EventPage>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let after = q.after.unwrap_or(0);
    let tenant = match &q.tenant {
        Some(slug) => Some(state.orch.catalog().tenant_by_slug(slug).await?.id),
        None => None,
    };
    let events = state.orch.catalog().events(tenant, after, limit).await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(axum::Json(EventPage {
        items: events.into_iter().map(convert::event).collect(),
        next_after,
    }))
}

/// An event a sink refused for good.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: i64,
    pub error: String,
    pub attempts: i64,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Events that a sink refused for good (they were not retried).
#[utoipa::path(get, path = "/api/v1/events/dead-letters", tag = "events",
    responses((status = 200, body = [DeadLetter])),
    security(("bearer" = ["reader"])))]
pub async fn dead_letters(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<DeadLetter>>, Problem> {
    let letters = state.orch.catalog().dead_letters().await?;
    Ok(axum::Json(
        letters
            .into_iter()
            .map(|d| DeadLetter {
                sink: d.sink,
                seq: d.seq,
                error: d.error,
                attempts: d.attempts,
                at: d.at,
            })
            .collect(),
    ))
}
