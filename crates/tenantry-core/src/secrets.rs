//! Secrets at rest: tenant credentials are sealed with XChaCha20-Poly1305 under a master key
//! before they reach the catalog, with the tenant's id as associated data, so that a sealed
//! secret copied onto another tenant's row does not open.
//!
//! The master key is 32 random bytes, written base64-encoded to a key file by `tenantry init`
//! or given as `TENANTRY_MASTER_KEY`. Neither the key nor an opened secret implements
//! `Display`, and their `Debug` is redacted, so neither reaches a log by accident.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use std::fmt;

/// Why a key or a sealed secret could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error(
        "the master key must be 32 bytes, base64-encoded (generate one with `tenantry init` or `head -c32 /dev/urandom | base64`)"
    )]
    BadKey,
    #[error(
        "a sealed secret could not be opened: it was sealed with another master key, for another tenant, or altered"
    )]
    Unsealable,
}

/// The key that seals every secret in the catalog.
#[derive(Clone)]
pub struct MasterKey(Key);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const NONCE_LEN: usize = 24;

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Key::generate())
    }

    /// Parses the base64 text of a key (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey)?;
        let key = Key::try_from(bytes.as_slice()).map_err(|_| SecretError::BadKey)?;
        Ok(Self(key))
    }

    /// The key as base64 text, for writing a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_slice())
    }

    /// A key for another purpose derived from this one (SHA-256 over the purpose and the key),
    /// so that one secret to keep safe yields every key Tenantry needs.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(b"tenantry derived key\0");
        hash.update(purpose.as_bytes());
        hash.update([0]);
        hash.update(self.0.as_slice());
        hash.finalize().into()
    }

    /// Seals `plaintext` for `owner` (a tenant id, or any context string): nonce ‖ ciphertext.
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XNonce::generate();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`MasterKey::seal`] sealed for the same `owner`.
    pub fn open(&self, owner: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Unsealable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Unsealable)?;
        XChaCha20Poly1305::new(&self.0)
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_owner_and_key() {
        let key = MasterKey::generate();
        let sealed = key.seal("tenant-a", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open("tenant-a", &sealed).unwrap(), b"s3cret");
        assert_eq!(key.open("tenant-b", &sealed), Err(SecretError::Unsealable));
        assert_eq!(
            MasterKey::generate().open("tenant-a", &sealed),
            Err(SecretError::Unsealable)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.open("tenant-a", &tampered),
            Err(SecretError::Unsealable)
        );
        assert_ne!(key.seal("tenant-a", b"s3cret"), sealed, "nonces differ");
    }

    #[test]
    fn keys_round_trip_through_base64_and_never_debug_print() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&format!(" {}\n", key.to_base64())).unwrap();
        assert_eq!(again.open("t", &key.seal("t", b"x")).unwrap(), b"x");
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(
            MasterKey::parse("too-short").unwrap_err(),
            SecretError::BadKey
        );
    }
}
