//! Lifecycle events leave the process here: sinks deliver each outbox event, at least once and
//! with its stable id, to NATS JetStream, signed webhooks, or the log.
//!
//! # Layout
//! - [`sink`]: the [`EventSink`] trait and the delivery error, classified transient/permanent.
//! - [`nats`]: JetStream, with the event id as `Nats-Msg-Id` so the broker de-duplicates.
//! - [`webhook`]: HTTP POST with an HMAC-SHA256 signature over timestamp and body.
//! - [`log`]: the process log.

pub mod log;
pub mod nats;
pub mod sink;
pub mod webhook;

pub use sink::{DeliveryError, EventSink};
