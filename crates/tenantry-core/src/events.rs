//! Lifecycle events. They are written to the catalog's outbox in the same transaction as the
//! state change they describe, so an event exists exactly when its change does.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kinds of lifecycle event, named as consumers see them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A tenant was requested and recorded.
    TenantCreated,
    /// Its space, data, identity and storage exist.
    TenantProvisioned,
    /// It is serving.
    TenantActivated,
    /// It stopped serving; data and storage are kept.
    TenantSuspended,
    /// It serves again after a suspension.
    TenantResumed,
    /// Its space and storage are removed; the catalog keeps its record.
    TenantDeleted,
    /// An operation on it failed; the payload names the step and the error.
    TenantFailed,
    /// Its infrastructure was provisioned or updated and verified.
    InfrastructureReady,
    /// An infrastructure operation failed and was rolled back; the payload names the step.
    InfrastructureFailed,
    /// Its infrastructure was destroyed.
    InfrastructureDeprovisioned,
    /// The reconciler found its infrastructure differing from its declared configuration.
    DriftDetected,
    /// An update queued by the reconciler brought it back to its declared configuration.
    DriftRepaired,
    /// A live move of its data began (payload: from and to).
    TenantMoveStarted,
    /// Its data now lives at the move's target; the source is kept until the move completes.
    TenantMoved,
    /// A move completed: the source's data is removed.
    TenantMoveCompleted,
    /// A move was rolled back: the tenant lives at its old place again, with the changes it
    /// received meanwhile.
    TenantMoveRolledBack,
    /// A move failed or was cancelled before its switch and was undone: the tenant lives where
    /// it did, and the target is gone (payload: the step and the error, or who cancelled).
    TenantMoveFailed,
}

impl EventType {
    pub const ALL: [EventType; 17] = [
        EventType::TenantCreated,
        EventType::TenantProvisioned,
        EventType::TenantActivated,
        EventType::TenantSuspended,
        EventType::TenantResumed,
        EventType::TenantDeleted,
        EventType::TenantFailed,
        EventType::InfrastructureReady,
        EventType::InfrastructureFailed,
        EventType::InfrastructureDeprovisioned,
        EventType::DriftDetected,
        EventType::DriftRepaired,
        EventType::TenantMoveStarted,
        EventType::TenantMoved,
        EventType::TenantMoveCompleted,
        EventType::TenantMoveRolledBack,
        EventType::TenantMoveFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TenantCreated => "TenantCreated",
            EventType::TenantProvisioned => "TenantProvisioned",
            EventType::TenantActivated => "TenantActivated",
            EventType::TenantSuspended => "TenantSuspended",
            EventType::TenantResumed => "TenantResumed",
            EventType::TenantDeleted => "TenantDeleted",
            EventType::TenantFailed => "TenantFailed",
            EventType::InfrastructureReady => "InfrastructureReady",
            EventType::InfrastructureFailed => "InfrastructureFailed",
            EventType::InfrastructureDeprovisioned => "InfrastructureDeprovisioned",
            EventType::DriftDetected => "DriftDetected",
            EventType::DriftRepaired => "DriftRepaired",
            EventType::TenantMoveStarted => "TenantMoveStarted",
            EventType::TenantMoved => "TenantMoved",
            EventType::TenantMoveCompleted => "TenantMoveCompleted",
            EventType::TenantMoveRolledBack => "TenantMoveRolledBack",
            EventType::TenantMoveFailed => "TenantMoveFailed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}
