//! The Kubernetes runtime: each dedicated tenant gets a namespace of its own holding a Secret,
//! a Deployment, a Service and (when it has domains) an Ingress, applied with server-side apply.
//!
//! Why a namespace per tenant: it is the unit Kubernetes isolates by (quotas, network policies,
//! RBAC), it carries the tenant's labels, and deleting it removes everything the tenant had in
//! one call.
//!
//! # Layout
//!
//! - [`manifests`]: renders a [`crate::ComputeSpec`] into the tenant's objects, and to YAML —
//!   pure, no cluster needed; [`render_redacted`] is the form that may be shown to people.
//! - `runtime`: [`KubernetesRuntime`], the [`crate::ComputeRuntime`] that applies them, scales
//!   to zero, deletes, and reads back the Deployment's state.
//!
//! k8s-openapi's API-version feature is chosen in this crate's `Cargo.toml` (`latest`): the
//! objects used (`apps/v1`, `networking.k8s.io/v1`, `v1`) are the same on every supported
//! cluster.

pub mod manifests;
mod runtime;

pub use manifests::{KubernetesOptions, TenantObject, render, render_redacted, to_yaml};
pub use runtime::KubernetesRuntime;
