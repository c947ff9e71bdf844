//! What a sink is, and how its failures are classified.

use async_trait::async_trait;
use tenantry_catalog::model::Event;

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Worth retrying (the receiver is down or overloaded); otherwise the event is dead-lettered.
    pub transient: bool,
    pub message: String,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

/// Somewhere events go. Delivery is at least once: a sink may see an event again after a crash
/// and must let its consumers de-duplicate by the event's id.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// A stable name: the sink's delivery cursor is kept under it.
    fn name(&self) -> &str;
    /// Delivers one event; returns only once the receiver has accepted it.
    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError>;
}

/// The JSON body every sink sends.
pub fn body(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "id": event.id,
        "seq": event.seq,
        "type": event.event_type,
        "tenant_id": event.tenant_id,
        "payload": event.payload,
        "created_at": event.created_at,
    })
}
