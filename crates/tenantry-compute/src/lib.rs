//! Dedicated compute: the seeds' `container_per_tenant`. A tenant whose placement says
//! `dedicated` gets its own copy of the application, run by a [`ComputeRuntime`]:
//!
//! - [`process::ProcessRuntime`] (the embedded default) runs it as a local process of its own,
//!   on its own port;
//! - `kubernetes::KubernetesRuntime` applies a Namespace, Deployment, Service, Ingress and
//!   Secret per tenant with server-side apply.
//!
//! The runtime is told what to run ([`ComputeSpec`]: the tenant's environment, its secrets, its
//! resource caps and its host names) and reports what it observes ([`ComputeStatus`]); what the
//! tenant *should* have is the catalog's business, and the reconciler compares the two.
//!
//! # Layout
//! - [`process`]: the `process` runtime.
//! - [`kubernetes`]: the `kubernetes` runtime and the objects it renders.

pub mod kubernetes;
pub mod process;

use secrecy::SecretString;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use tenantry_core::TenantId;

/// Compute errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComputeError {
    /// The runtime cannot be reached at all (no cluster, no program to run).
    #[error("the {runtime} compute runtime is not available: {reason}")]
    Unavailable {
        runtime: &'static str,
        reason: String,
    },
    /// The tenant's compute started but did not become healthy in time.
    #[error("tenant {tenant}'s compute did not become healthy within {secs} s: {detail}")]
    Unhealthy {
        tenant: TenantId,
        secs: u64,
        detail: String,
    },
    /// Local files or processes failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The runtime refused or failed a request.
    #[error("{0}")]
    Runtime(String),
}

impl ComputeError {
    /// Whether trying again may succeed: local hiccups may pass; a runtime that is not there
    /// or an application that does not come up healthy will not by itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, ComputeError::Io { .. } | ComputeError::Runtime(_))
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| ComputeError::Io { what, source }
    }
}

pub type Result<T, E = ComputeError> = std::result::Result<T, E>;

/// Resource caps of a tenant's compute, in Kubernetes' units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Memory, e.g. `512Mi`.
    pub memory: String,
    /// CPU, e.g. `500m`.
    pub cpu: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            memory: "512Mi".into(),
            cpu: "500m".into(),
        }
    }
}

/// What to run for one tenant.
#[derive(Clone)]
pub struct ComputeSpec {
    pub tenant: TenantId,
    pub slug: String,
    pub region: String,
    pub plan: String,
    /// The tenant's environment: `TENANT_ID`, `STORAGE_PREFIX`, `REDIS_PREFIX`, …
    pub env: BTreeMap<String, String>,
    /// Environment that must never be printed or logged: its database URL with credentials,
    /// its licence. Kubernetes keeps these in a Secret.
    pub secret_env: BTreeMap<String, SecretString>,
    pub resources: Resources,
    /// Host names the tenant is reached at (its domains).
    pub domains: Vec<String>,
}

impl fmt::Debug for ComputeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputeSpec")
            .field("tenant", &self.tenant)
            .field("slug", &self.slug)
            .field("region", &self.region)
            .field("plan", &self.plan)
            .field("env", &self.env)
            .field("secret_env", &self.secret_env.keys().collect::<Vec<_>>())
            .field("resources", &self.resources)
            .field("domains", &self.domains)
            .finish()
    }
}

/// What a runtime observes of a tenant's compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeState {
    /// Running and answering its health check.
    Running,
    /// Running but not (yet) healthy.
    Unhealthy,
    /// Set up but not running (stopped, scaled to zero, or dead).
    Stopped,
    /// Nothing exists for the tenant.
    Absent,
}

impl ComputeState {
    /// Whether the runtime has anything for the tenant.
    pub fn exists(self) -> bool {
        self != ComputeState::Absent
    }
}

impl fmt::Display for ComputeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComputeState::Running => "running",
            ComputeState::Unhealthy => "unhealthy",
            ComputeState::Stopped => "stopped",
            ComputeState::Absent => "absent",
        })
    }
}

/// A tenant's compute as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComputeStatus {
    pub state: ComputeState,
    /// Where it answers, e.g. `http://127.0.0.1:8123`.
    pub endpoint: Option<String>,
    /// Anything worth telling people (why it is unhealthy, its process id…).
    pub detail: Option<String>,
}

impl ComputeStatus {
    pub fn absent() -> Self {
        Self {
            state: ComputeState::Absent,
            endpoint: None,
            detail: None,
        }
    }
}

/// Runs tenants' dedicated compute. Every method is idempotent.
#[async_trait::async_trait]
pub trait ComputeRuntime: Send + Sync {
    /// `process` or `kubernetes`.
    fn name(&self) -> &'static str;
    /// Creates or updates the tenant's compute to `spec`, starts it and waits until it is
    /// healthy.
    async fn ensure_running(&self, spec: &ComputeSpec) -> Result<ComputeStatus>;
    /// Stops the tenant's compute and keeps its set-up (a suspended tenant).
    async fn stop(&self, tenant: TenantId) -> Result<()>;
    /// Removes everything the runtime made for the tenant.
    async fn remove(&self, tenant: TenantId) -> Result<()>;
    /// What is running for the tenant now.
    async fn status(&self, tenant: TenantId) -> Result<ComputeStatus>;
}
