//! Infrastructure around a tenant's data.
//!
//! # Layout
//! - [`storage`]: each tenant's storage prefix (`<region>/tenants/<tenant id>/`) in an object
//!   store — the local filesystem by default.

pub mod storage;

pub use storage::{StorageError, TenantStorage};
