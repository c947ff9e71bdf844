//! Webhooks: each event is POSTed as JSON with headers a receiver can verify:
//! `Tenantry-Event-Id`, and `Tenantry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" under the webhook's secret>`. Receivers should reject a stale `t` (replay) and
//! de-duplicate by the event id. 2xx is delivered; 408, 429 and 5xx or no answer are retried;
//! other 4xx mean the receiver refuses the event for good (dead letter).

use crate::sink::{DeliveryError, EventSink, body};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tenantry_catalog::model::Event;

type HmacSha256 = Hmac<Sha256>;

/// The signature header's value for `body` at unix time `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against `body`, refusing timestamps older than `tolerance`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: Duration) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).unsigned_abs() > tolerance.as_secs() {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

pub struct WebhookSink {
    name: String,
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(name: &str, url: &str, secret: &[u8]) -> Self {
        Self {
            name: format!("webhook:{name}"),
            url: url.to_owned(),
            secret: secret.to_vec(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let payload = serde_json::to_vec(&body(event)).expect("event body serialises");
        let t = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("tenantry-event-id", event.id.to_string())
            .header("tenantry-signature", signature(&self.secret, t, &payload))
            .body(payload)
            .send()
            .await
            .map_err(|e| DeliveryError::transient(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(DeliveryError::transient(format!(
                "{} answered {status}",
                self.url
            )))
        } else {
            Err(DeliveryError::permanent(format!(
                "{} refused the event: {status}",
                self.url
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_stale_or_tampered_ones_do_not() {
        let body = br#"{"id":"x"}"#;
        let header = signature(b"secret", 1_000, body);
        let day = Duration::from_secs(300);
        assert!(verify(b"secret", &header, body, 1_010, day));
        assert!(!verify(b"other", &header, body, 1_010, day));
        assert!(!verify(b"secret", &header, br#"{"id":"y"}"#, 1_010, day));
        assert!(!verify(b"secret", &header, body, 2_000, day), "stale");
        assert!(!verify(b"secret", "garbage", body, 1_000, day));
    }
}
