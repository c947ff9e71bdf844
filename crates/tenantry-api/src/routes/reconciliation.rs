//! `/api/v1/reconciliation`: the drift report of the reconciler's last pass over tenants.

use crate::problem::Problem;
use crate::state::AppState;
use crate::views;
use axum::extract::State;
use tenantry_api_types::responses::Reconciliation;

/// The last reconcile pass of `tenantry serve` (every `infrastructure.reconcile_interval_secs`):
/// each drift found, what was done and how it ended. Before the first pass, a dry run now.
#[utoipa::path(get, path = "/api/v1/reconciliation", tag = "operations",
    responses((status = 200, body = Reconciliation)),
    security(("bearer" = ["reader"])))]
pub async fn last(State(state): State<AppState>) -> Result<axum::Json<Reconciliation>, Problem> {
    if let Some(report) = state.reconciliation.read().await.as_ref() {
        return Ok(axum::Json(report.clone()));
    }
    let report = state.orch.reconcile_tenants(true).await?;
    Ok(axum::Json(views::reconciliation(&report)))
}
