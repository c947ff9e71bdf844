//! Licences: what a tenant's plan entitles it to, signed with Ed25519 so that the tenant's
//! compute can check it offline with the public key alone.
//!
//! A licence travels as `<base64url(JSON)>.<base64url(signature over those JSON bytes)>`.
//! Tampering with either half fails verification; an expired licence verifies as such.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a licence or a key is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenceError {
    #[error("not a licence: expected <payload>.<signature> in base64url")]
    Malformed,
    #[error("the licence's signature does not match: it was altered or signed by another key")]
    BadSignature,
    #[error("the licence expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("a licence key is 32 bytes, base64-encoded")]
    BadKey,
}

/// What a tenant may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub isolation: String,
    pub compute: String,
    pub storage_quota_mb: u64,
}

/// A tenant's licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub tenant_id: String,
    pub slug: String,
    pub plan: String,
    pub limits: Limits,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The private key licences are signed with.
pub struct LicenceKey(SigningKey);

impl fmt::Debug for LicenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LicenceKey(<redacted>)")
    }
}

/// The public key licences are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicencePublicKey(VerifyingKey);

impl LicenceKey {
    pub fn generate() -> Self {
        Self(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    pub fn parse(text: &str) -> Result<Self, LicenceError> {
        let bytes: [u8; 32] = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(LicenceError::BadKey)?;
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    /// The installation's signing key, derived from its master key: nothing more to keep safe,
    /// and the same key in every process that holds the master key.
    pub fn derived_from(master: &crate::secrets::MasterKey) -> Self {
        Self(SigningKey::from_bytes(&master.derive("licence signing")))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    pub fn public(&self) -> LicencePublicKey {
        LicencePublicKey(self.0.verifying_key())
    }

    /// Signs a licence into its travelling form.
    pub fn issue(&self, licence: &Licence) -> String {
        let payload = serde_json::to_vec(licence).expect("licences serialise");
        let signature = self.0.sign(&payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

impl LicencePublicKey {
    pub fn parse(text: &str) -> Result<Self, LicenceError> {
        let bytes: [u8; 32] = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(LicenceError::BadKey)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| LicenceError::BadKey)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// Checks a licence's signature and expiry at `now`, and returns its contents.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Licence, LicenceError> {
        let (payload, signature) = token
            .trim()
            .split_once('.')
            .ok_or(LicenceError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LicenceError::Malformed)?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or(LicenceError::Malformed)?;
        self.0
            .verify(&payload, &Signature::from_bytes(&signature))
            .map_err(|_| LicenceError::BadSignature)?;
        let licence: Licence =
            serde_json::from_slice(&payload).map_err(|_| LicenceError::Malformed)?;
        match licence.expires_at {
            Some(at) if at <= now => Err(LicenceError::Expired(at)),
            _ => Ok(licence),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_test_licence() -> Licence {
        Licence {
            tenant_id: "0190a0a0-0000-7000-8000-000000000001".into(),
            slug: "acme".into(),
            plan: "enterprise".into(),
            limits: Limits {
                isolation: "database".into(),
                compute: "dedicated".into(),
                storage_quota_mb: 204_800,
            },
            issued_at: Utc::now(),
            expires_at: None,
        }
    }

    #[test]
    fn licences_verify_with_the_public_key_and_fail_when_tampered_with() {
        let key = LicenceKey::generate();
        let public = LicencePublicKey::parse(&key.public().to_base64()).unwrap();
        let licence = make_test_licence();
        let token = key.issue(&licence);
        assert_eq!(public.verify(&token, Utc::now()).unwrap(), licence);

        let (payload, sig) = token.split_once('.').unwrap();
        let mut forged: Licence =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        forged.plan = "free-forever".into();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(
            public.verify(&forged, Utc::now()),
            Err(LicenceError::BadSignature)
        );
        assert_eq!(
            LicenceKey::generate().public().verify(&token, Utc::now()),
            Err(LicenceError::BadSignature)
        );
        assert_eq!(
            public.verify("nonsense", Utc::now()),
            Err(LicenceError::Malformed)
        );
    }

    #[test]
    fn expired_licences_say_so_and_keys_round_trip() {
        let key = LicenceKey::parse(&LicenceKey::generate().to_base64()).unwrap();
        let mut licence = make_test_licence();
        licence.expires_at = Some(Utc::now() - chrono::Duration::days(1));
        let token = key.issue(&licence);
        assert!(matches!(
            key.public().verify(&token, Utc::now()),
            Err(LicenceError::Expired(_))
        ));
        assert_eq!(format!("{key:?}"), "LicenceKey(<redacted>)");
    }
}
