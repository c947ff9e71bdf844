//! The log sink: every event as a structured log line, for operators without a broker.

use crate::sink::{DeliveryError, EventSink, body};
use async_trait::async_trait;
use tenantry_catalog::model::Event;

pub struct LogSink;

#[async_trait]
impl EventSink for LogSink {
    fn name(&self) -> &str {
        "log"
    }

    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        tracing::info!(target: "tenantry::events", event_id = %event.id, event_type = %event.event_type, tenant = %event.tenant_id, body = %body(event), "event");
        Ok(())
    }
}
