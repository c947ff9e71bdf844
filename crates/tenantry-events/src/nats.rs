//! NATS JetStream. Each event is published to `<prefix>.<region>.<type>` with `Nats-Msg-Id` set
//! to the event's id, and counts as delivered only once the stream has acknowledged it; the
//! stream's duplicate window makes a re-delivery after a crash invisible to consumers.

use crate::sink::{DeliveryError, EventSink, body};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_trait::async_trait;
use std::time::Duration;
use tenantry_catalog::model::Event;

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    /// The stream, created when missing.
    pub stream: String,
    /// Subjects are `<prefix>.<region>.<event type>`.
    pub subject_prefix: String,
    /// How long the stream remembers message ids for de-duplication.
    pub duplicate_window: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "TENANTRY_EVENTS".into(),
            subject_prefix: "tenantry.events".into(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

pub struct NatsSink {
    name: String,
    config: NatsConfig,
    js: jetstream::Context,
    /// Set once the stream is known to exist; the stream is made on first delivery, so that a
    /// broker that is down at start only delays events.
    stream_ready: tokio::sync::OnceCell<()>,
}

impl NatsSink {
    /// Connects (in the background when the broker is not up yet).
    pub async fn connect(config: NatsConfig) -> Result<Self, DeliveryError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(&config.url)
            .await
            .map_err(|e| DeliveryError::transient(format!("connecting to {}: {e}", config.url)))?;
        Ok(Self {
            name: format!("nats:{}", config.stream),
            js: jetstream::new(client),
            config,
            stream_ready: tokio::sync::OnceCell::new(),
        })
    }

    async fn ensure_stream(&self) -> Result<(), DeliveryError> {
        self.stream_ready
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(stream::Config {
                        name: self.config.stream.clone(),
                        subjects: vec![format!("{}.>", self.config.subject_prefix)],
                        duplicate_window: self.config.duplicate_window,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        DeliveryError::transient(format!(
                            "creating stream {}: {e}",
                            self.config.stream
                        ))
                    })
            })
            .await
            .map(|_| ())
    }

    /// The subject of an event.
    pub fn subject(&self, event: &Event) -> String {
        let region = event.payload["region"].as_str().unwrap_or("unknown");
        format!(
            "{}.{region}.{}",
            self.config.subject_prefix, event.event_type
        )
    }
}

#[async_trait]
impl EventSink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        self.ensure_stream().await?;
        let payload = serde_json::to_vec(&body(event)).expect("event body serialises");
        let publish = PublishMessage::build()
            .message_id(event.id.to_string())
            .payload(payload.into());
        let ack = self
            .js
            .send_publish(self.subject(event), publish)
            .await
            .map_err(|e| DeliveryError::transient(format!("publishing: {e}")))?;
        ack.await
            .map_err(|e| DeliveryError::transient(format!("waiting for the stream's ack: {e}")))?;
        Ok(())
    }
}
