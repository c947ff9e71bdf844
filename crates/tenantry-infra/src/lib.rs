//! Infrastructure around a tenant's data.
//!
//! # Layout
//! - [`storage`]: each tenant's storage prefix (`<region>/tenants/<tenant id>/`) in an object
//!   store — the local filesystem by default.
//! - [`terraform`]: Terraform (or OpenTofu) as an infrastructure driver, a workspace and a
//!   state key per tenant.

pub mod storage;
pub mod terraform;

pub use storage::{StorageError, TenantStorage};
