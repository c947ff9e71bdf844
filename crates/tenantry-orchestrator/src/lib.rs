//! The orchestrator: every change to a tenant is a durable operation of ordered, idempotent
//! steps, each checkpointed in the catalog as it completes. A step that fails for good undoes
//! the completed steps in reverse order (a saga) and leaves the tenant `failed` with the step
//! and the reason; a process that dies mid-operation leaves a lease that expires, after which
//! any worker resumes from the last checkpoint.
//!
//! # Layout
//! - [`service`]: [`Orchestrator`], the entry point: request operations and run them.
//! - [`moves`]: live tenant moves: copy under change capture, catch up, pause, switch.
//! - `mover`: the engine side of a move, one interface over PostgreSQL's and SQLite's.
//! - [`request`]: validating a provisioning request and planning its placement (dry run).
//! - [`steps`]: the steps of each operation kind, what each does and how it is undone.
//! - [`runner`]: claiming an operation, running its steps with retries, and rolling back.
//! - [`worker`]: worker identity, and telling a dead lease holder from a slow one.
//! - [`fleet`]: fleet migrations: every selected space to the latest version, in parallel.
//! - [`delegated`]: delegated set-up: a region's data plane creates its tenants' spaces.
//! - [`shards`]: shards registered at run time, draining, and the warm pool.
//! - [`stats`]: per-tenant statistics (rows, size, query figures) for placement.
//! - [`auto_moves`]: moves the reconciler starts for tenants well past a growth threshold.
//! - [`compute`]: licences, and what a dedicated tenant's compute runs with.
//! - [`plan_change`]: a new plan: placement again, then a move or an update.
//! - [`reconcile`]: every tenant's declared state against what is observed, repaired.
//! - [`failpoints`]: `TENANTRY_FAILPOINTS`, to crash or fail at any step in tests.
//! - [`error`]: the layer's error type.

pub mod auto_moves;
pub mod compute;
pub mod delegated;
pub mod error;
pub mod failpoints;
pub mod fleet;
pub mod infrastructure;
mod mover;
pub mod moves;
pub mod plan_change;
pub mod reconcile;
pub mod request;
pub mod runner;
pub mod service;
pub mod shards;
pub mod stats;
pub mod steps;
pub mod worker;

pub use error::{OrchestratorError, Result};
pub use infrastructure::InfraRequest;
pub use request::{ProvisionPlan, ProvisionRequest};
pub use runner::{NoProgress, Progress};
pub use service::Orchestrator;
