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
}
