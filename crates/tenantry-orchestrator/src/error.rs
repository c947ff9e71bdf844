//! Orchestrator errors: bad requests (nothing was written), and failures of the layers below.

use tenantry_catalog::CatalogError;
use tenantry_compute::ComputeError;
use tenantry_core::ids::InvalidSlug;
use tenantry_core::placement::PlacementError;
use tenantry_core::shard::ResolveError;
use tenantry_engines::SpaceError;
use tenantry_infra::StorageError;
use uuid::Uuid;

pub type Result<T, E = OrchestratorError> = std::result::Result<T, E>;

/// What went wrong while requesting or running an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// The request is malformed; nothing was written.
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Slug(#[from] InvalidSlug),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Space(#[from] SpaceError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// Another worker holds the operation's lease.
    #[error(
        "operation {0} is being run by another worker; its lease must expire before it can be resumed here"
    )]
    LeaseHeld(Uuid),
    /// The operation ran and failed; its completed steps were undone.
    #[error("operation {operation} failed at step {step}: {error}")]
    OperationFailed {
        operation: Uuid,
        step: String,
        error: String,
    },
}

impl From<tenantry_core::IllegalTransition> for OrchestratorError {
    fn from(e: tenantry_core::IllegalTransition) -> Self {
        OrchestratorError::Catalog(CatalogError::IllegalTransition(e))
    }
}

/// A step's failure, classified once: transient failures are retried with backoff, permanent
/// ones roll the operation back.
#[derive(Debug, Clone)]
pub struct StepError {
    pub transient: bool,
    pub message: String,
}

impl StepError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

macro_rules! classify {
    ($($ty:ty),+) => {$(
        impl From<$ty> for StepError {
            fn from(e: $ty) -> Self {
                StepError { transient: e.is_transient(), message: e.to_string() }
            }
        }
    )+};
}
classify!(CatalogError, SpaceError, StorageError, ComputeError);

impl From<tenantry_infra::terraform::TerraformError> for StepError {
    /// Terraform's own failures (a module that does not apply, a missing binary) do not go
    /// away by running it again; its lock waits are bounded by `-lock-timeout`.
    fn from(e: tenantry_infra::terraform::TerraformError) -> Self {
        StepError::permanent(e.to_string())
    }
}

impl From<OrchestratorError> for StepError {
    fn from(e: OrchestratorError) -> Self {
        let transient = match &e {
            OrchestratorError::Catalog(c) => c.is_transient(),
            OrchestratorError::Space(s) => s.is_transient(),
            OrchestratorError::Storage(s) => s.is_transient(),
            OrchestratorError::Compute(c) => c.is_transient(),
            _ => false,
        };
        StepError {
            transient,
            message: e.to_string(),
        }
    }
}
