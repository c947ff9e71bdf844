//! Tenantry's domain, free of I/O: what a tenant is, where it may live and how it moves through
//! its lifecycle.
//!
//! # Layout
//! - [`ids`]: tenant ids and slugs, validated once at the edge.
//! - [`isolation`]: how isolated a tenant's data is, its compute, and database engines.
//! - [`licence`]: Ed25519-signed licences, verifiable offline with the public key.
//! - [`lifecycle`]: the tenant state machine; an illegal transition is a typed error.
//! - [`placement`]: the pure, explainable function from a tenant's characteristics to its
//!   isolation and compute, naming the rule that decided.
//! - [`shard`]: the shard resolver, which picks a shard with room in the tenant's own region.
//! - [`space`]: where a tenant's data lives (its *tenant space*).
//! - [`growth`]: thresholds on a tenant's statistics, and the more isolated placement they advise.
//! - [`events`]: the lifecycle event types published through the outbox.
//! - [`config`]: `tenantry.toml`, typed and validated at load.
//! - [`domain`]: tenants' host names (a primary and aliases), normalised for lookup.
//! - [`ident`]: validation and quoting of identifiers that reach SQL.
//! - [`secrets`]: sealing credentials at rest under the master key.

pub mod config;
pub mod domain;
pub mod events;
pub mod growth;
pub mod ident;
pub mod ids;
pub mod isolation;
pub mod licence;
pub mod lifecycle;
pub mod placement;
pub mod secrets;
pub mod shard;
pub mod space;

pub use ids::{Slug, TenantId};
pub use isolation::{Compute, Engine, Isolation};
pub use lifecycle::{IllegalTransition, TenantState};
