//! Delegated database set-up (the seeds' data-plane model).
//!
//! A region may name a data-plane endpoint. Provisioning a tenant of that region then does not
//! create its space itself: it asks the region's data plane, with
//! `POST {endpoint}/internal/database/initialize`, and the data plane creates the space and runs
//! the migrations — it owns its schema. The call is signed (HMAC-SHA-256 over a timestamp and
//! the body, with a secret both sides hold), refused when stale or replayed, and idempotent:
//! asking twice leaves one space, at the latest version.
//!
//! - [`signature`]: signing and verifying, with the replay guard.
//! - [`protocol`]: the request and the answer.
//! - [`client`]: the control plane's side.
//! - [`server`]: the data plane's endpoint, an axum router any service can mount.

pub mod client;
pub mod protocol;
pub mod server;
pub mod signature;

pub use client::{DataPlaneClient, DataPlaneError};
pub use protocol::{InitializeRequest, InitializeResponse};
pub use server::{DataPlane, INITIALIZE_PATH};
pub use signature::{SignatureError, Signer, Verifier};

/// The environment variable holding the secret shared by a control plane and its data planes.
pub const SECRET_ENV: &str = "TENANTRY_DATA_PLANE_SECRET";
