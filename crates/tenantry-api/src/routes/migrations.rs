//! `POST /api/v1/migrations`: a fleet migration — every selected tenant space brought to the
//! application's latest migration.
//!
//! It runs within the request and answers with a result per space once all have finished. A
//! fleet migration is not a tenant operation (it spans many tenants and has no saga to undo);
//! it is idempotent per space, so a client that loses the connection runs it again and only
//! the unfinished spaces are touched. Progress shows in the server's log, a line per space.

use super::ApiJson;
use crate::convert;
use crate::problem::Problem;
use crate::state::AppState;
use axum::extract::State;
use tenantry_api_types::admin::{MigrateFleet, SpaceResult};
use tenantry_orchestrator::fleet::{FleetProgress, FleetSelection, SpaceOutcome};

/// Largest concurrency a request may ask for.
pub const MAX_CONCURRENCY: usize = 64;

/// Logs each space as it finishes.
struct LogProgress;

impl FleetProgress for LogProgress {
    fn finished(&self, r: &tenantry_orchestrator::fleet::SpaceResult) {
        match &r.outcome {
            SpaceOutcome::Failed { error } => {
                tracing::warn!(space = %r.label, %error, "space failed to migrate")
            }
            _ => tracing::info!(space = %r.label, took_ms = r.took_ms, "space migrated"),
        }
    }
}

/// Migrate (or with `dry_run`, plan) the selected spaces; `200` with a result per space, in
/// label order. Spaces that failed are named with their error; the others are finished.
#[utoipa::path(post, path = "/api/v1/migrations", tag = "topology", request_body = MigrateFleet,
    responses((status = 200, body = [SpaceResult]), (status = 404, body = crate::problem::Problem, content_type = "application/problem+json"), (status = 422, body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn run(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MigrateFleet>,
) -> Result<axum::Json<Vec<SpaceResult>>, Problem> {
    if !(1..=MAX_CONCURRENCY).contains(&body.concurrency) {
        return Err(Problem::invalid(
            "concurrency",
            format!("concurrency must be between 1 and {MAX_CONCURRENCY}"),
        ));
    }
    let selection = FleetSelection {
        slugs: body.tenants,
        region: body.region,
        isolation: body.isolation,
    };
    let mut results = state
        .orch
        .migrate_fleet(&selection, body.concurrency, body.dry_run, &LogProgress)
        .await?;
    results.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(axum::Json(
        results.into_iter().map(convert::space_result).collect(),
    ))
}
