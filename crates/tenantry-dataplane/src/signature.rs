//! Request signatures: HMAC-SHA-256 over `"{timestamp}.{body}"` with the shared secret, sent in
//! [`TIMESTAMP_HEADER`] and [`SIGNATURE_HEADER`].
//!
//! The timestamp bounds how long a captured request stays usable ([`Verifier`] refuses one
//! older, or further in the future, than its window); within the window each signature is
//! accepted once, so a captured request cannot be played again. Every request carries a random
//! nonce in its body, so two honest requests never share a signature, even within one second.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

/// The header with the request's Unix time, in seconds.
pub const TIMESTAMP_HEADER: &str = "x-tenantry-timestamp";
/// The header with the hex HMAC-SHA-256 of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-tenantry-signature";

/// How far a request's timestamp may be from the data plane's clock, by default.
pub const DEFAULT_WINDOW_SECS: i64 = 300;

/// The shortest secret accepted: 32 characters.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a request's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error(
        "the request is not signed: it needs the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers"
    )]
    Missing,
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error(
        "the request's timestamp is {0} s away from this data plane's clock (at most {1} s is accepted): stale, or a clock is wrong"
    )]
    Stale(i64, i64),
    #[error("the signature does not match the request: a different secret, or an altered body")]
    Mismatch,
    #[error("this signed request was already received: a replay is refused")]
    Replayed,
    #[error(
        "the shared secret is too short: use at least {MIN_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
    )]
    WeakSecret,
}

fn mac(secret: &SecretString, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn checked(secret: SecretString) -> Result<SecretString, SignatureError> {
    if secret.expose_secret().len() < MIN_SECRET_LEN {
        return Err(SignatureError::WeakSecret);
    }
    Ok(secret)
}

/// Signs requests (the control plane's side).
pub struct Signer {
    secret: SecretString,
}

impl Signer {
    pub fn new(secret: SecretString) -> Result<Self, SignatureError> {
        Ok(Self {
            secret: checked(secret)?,
        })
    }

    /// The signature of `body` sent at `timestamp` (Unix seconds), hex.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        hex::encode(mac(&self.secret, timestamp, body).finalize().into_bytes())
    }
}

/// Verifies requests (the data plane's side), remembering the signatures it accepted while
/// their timestamps are inside the window.
pub struct Verifier {
    secret: SecretString,
    window: i64,
    seen: Mutex<HashMap<String, i64>>,
}

impl Verifier {
    pub fn new(secret: SecretString, window_secs: i64) -> Result<Self, SignatureError> {
        Ok(Self {
            secret: checked(secret)?,
            window: window_secs,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Checks the headers' values against `body` at `now` (Unix seconds); accepts each
    /// signature once.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Malformed(TIMESTAMP_HEADER))?;
        let tag = hex::decode(signature.trim())
            .map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))?;
        // The signature first: an unsigned caller learns nothing from the clock check.
        mac(&self.secret, timestamp, body)
            .verify_slice(&tag)
            .map_err(|_| SignatureError::Mismatch)?;
        let skew = (now - timestamp).abs();
        if skew > self.window {
            return Err(SignatureError::Stale(skew, self.window));
        }
        let mut seen = self.seen.lock().expect("seen signatures");
        seen.retain(|_, at| (now - *at).abs() <= self.window);
        if seen.insert(hex::encode(&tag), timestamp).is_some() {
            return Err(SignatureError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_request_is_accepted_once() {
        let signer = Signer::new(secret(KEY)).unwrap();
        let verifier = Verifier::new(secret(KEY), 300).unwrap();
        let sig = signer.sign(1_000, b"{}");
        assert_eq!(
            verifier.verify(Some("1000"), Some(&sig), b"{}", 1_010),
            Ok(())
        );
        assert_eq!(
            verifier.verify(Some("1000"), Some(&sig), b"{}", 1_011),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn altered_stale_unsigned_or_foreign_requests_are_refused() {
        let signer = Signer::new(secret(KEY)).unwrap();
        let verifier = Verifier::new(secret(KEY), 300).unwrap();
        let sig = signer.sign(1_000, b"{\"a\":1}");
        let check = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now| {
            verifier.verify(ts, sig, body, now)
        };
        assert_eq!(
            check(Some("1000"), Some(&sig), b"{\"a\":2}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some("1001"), Some(&sig), b"{\"a\":1}", 1_000),
            Err(SignatureError::Mismatch),
            "the timestamp is signed too"
        );
        assert_eq!(
            check(Some("1000"), Some(&sig), b"{\"a\":1}", 1_301),
            Err(SignatureError::Stale(301, 300))
        );
        assert_eq!(
            check(None, Some(&sig), b"{\"a\":1}", 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(Some("soon"), Some(&sig), b"{\"a\":1}", 1_000),
            Err(SignatureError::Malformed(TIMESTAMP_HEADER))
        );
        let other = Signer::new(secret("another-secret-of-thirty-two-chars"))
            .unwrap()
            .sign(1_000, b"{\"a\":1}");
        assert_eq!(
            check(Some("1000"), Some(&other), b"{\"a\":1}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert!(Signer::new(secret("short")).is_err());
    }
}
