//! Lifecycle events leave the process here: sinks deliver each outbox event, at least once and
//! with its stable id, to NATS JetStream, signed webhooks, or the log.
//!
//! # Layout
//! - [`sink`]: the [`EventSink`] trait and the delivery error, classified transient/permanent.
//! - [`nats`]: JetStream, with the event id as `Nats-Msg-Id` so the broker de-duplicates.
//! - [`webhook`]: HTTP POST with an HMAC-SHA256 signature over timestamp and body.
//! - [`log`]: the process log.
//! - [`relay`]: reads the outbox and delivers to every sink, in order, at least once.

pub mod log;
pub mod nats;
pub mod relay;
pub mod sink;
pub mod webhook;

pub use sink::{DeliveryError, EventSink};

use std::sync::Arc;
use tenantry_core::config::EventsConfig;

/// The sinks a configuration declares. A webhook whose secret variable is unset is an error:
/// unsigned webhooks are never sent.
pub async fn sinks_from_config(
    config: &EventsConfig,
) -> Result<Vec<Arc<dyn EventSink>>, DeliveryError> {
    let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
    if config.log {
        sinks.push(Arc::new(log::LogSink));
    }
    if let Some(n) = &config.nats {
        let sink = nats::NatsSink::connect(nats::NatsConfig {
            url: n.url.clone(),
            stream: n.stream.clone(),
            subject_prefix: n.subject_prefix.clone(),
            ..nats::NatsConfig::default()
        })
        .await?;
        sinks.push(Arc::new(sink));
    }
    for w in &config.webhooks {
        let secret = std::env::var(&w.secret_env).map_err(|_| {
            DeliveryError::permanent(format!(
                "webhook {}: the environment variable {} with its signing secret is not set",
                w.name, w.secret_env
            ))
        })?;
        sinks.push(Arc::new(webhook::WebhookSink::new(
            &w.name,
            &w.url,
            secret.as_bytes(),
        )));
    }
    Ok(sinks)
}
