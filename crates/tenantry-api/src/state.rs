//! What every handler shares.

use crate::auth::TokenVerifier;
use std::sync::Arc;
use tenantry_orchestrator::Orchestrator;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub orch: Arc<Orchestrator>,
    pub tokens: Arc<dyn TokenVerifier>,
    /// Woken when an operation is queued, so the worker starts it at once.
    pub work: Arc<Notify>,
    /// The names of the event sinks the relay delivers to (for the outbox-lag gauge).
    pub sinks: Option<Arc<Vec<String>>>,
    /// The reconciler's last pass over tenants, kept by `tenantry serve`.
    pub reconciliation:
        Arc<tokio::sync::RwLock<Option<tenantry_api_types::responses::Reconciliation>>>,
}
