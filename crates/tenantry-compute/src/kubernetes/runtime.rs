//! [`KubernetesRuntime`]: applies the objects of [`super::manifests`] with server-side apply and
//! reads back what the cluster reports.
//!
//! ## Why server-side apply
//!
//! Every object is sent whole, as tenantry wants it, with one field manager and `force`: the
//! API server merges it, so `ensure_running` is the same call whether the tenant is new, changed
//! or unchanged, and fields other controllers own (a cluster's defaults, an HPA's replicas if
//! one were added) are left to them. `stop` alone changes a single field — the replica count,
//! through the Deployment's `scale` subresource under a field manager of its own — so that it
//! does not become tenantry's whole intent for the Deployment (an apply of only
//! `spec.replicas` would remove every other field tenantry owns).
//!
//! ## Finding a tenant
//!
//! `stop`, `remove` and `status` get only a tenant id; the namespace is found by its
//! `tenantry.io/tenant-id` label, and the objects in it have fixed names.
//!
//! ## Permissions
//!
//! The identity tenantry runs as needs, cluster-wide: namespaces get/list/create/patch/delete;
//! secrets, services and ingresses create/patch/delete; deployments get/list/watch/create/patch
//! and `deployments/scale` patch; pods list (to say why a tenant is unhealthy).

use super::manifests::{
    APP_NAME, KubernetesOptions, LABEL_MANAGED_BY, LABEL_TENANT_ID, TenantObject, check_spec,
    namespace_name, render, service_url,
};
use crate::{ComputeError, ComputeRuntime, ComputeSpec, ComputeState, ComputeStatus, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use tenantry_core::TenantId;

const RUNTIME: &str = "kubernetes";

/// What to do when no cluster can be reached, appended to every `Unavailable` reason.
const HINT: &str = "set KUBECONFIG to a kubeconfig file for a reachable cluster (or put one at \
                    ~/.kube/config), or run tenantry inside a cluster with a service account";

/// Runs each dedicated tenant as a Deployment in a namespace of its own.
#[derive(Clone)]
pub struct KubernetesRuntime {
    client: Client,
    options: KubernetesOptions,
}

impl Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubernetesRuntime {
    /// Connects the way `kube::Client::try_default()` does — `KUBECONFIG`, else
    /// `~/.kube/config`, else the in-cluster service account — and then asks the API server
    /// for one namespace, so that an unreachable cluster or a missing permission shows now as
    /// [`ComputeError::Unavailable`] rather than at the first tenant. (`try_default` is
    /// `Config::infer` followed by `Client::try_from`; they are called apart here to name the
    /// server in errors.)
    pub async fn connect(options: KubernetesOptions) -> Result<Self> {
        options.validate()?;
        let config = Config::infer().await.map_err(|err| {
            unavailable(format!(
                "no cluster configuration was found ({}): {HINT}",
                chain(&err)
            ))
        })?;
        Self::connect_config(config, options, config_source()).await
    }

    /// [`Self::connect`] with a configuration built by the caller (a kubeconfig of its own).
    pub async fn connect_with(config: Config, options: KubernetesOptions) -> Result<Self> {
        options.validate()?;
        Self::connect_config(config, options, "configured by the caller".into()).await
    }

    async fn connect_config(
        mut config: Config,
        options: KubernetesOptions,
        source: String,
    ) -> Result<Self> {
        let server = config.cluster_url.to_string();
        config.connect_timeout = Some(options.api_timeout);
        let client = Client::try_from(config).map_err(|err| {
            unavailable(format!(
                "no client could be built for the API server at {server} ({}): {HINT}",
                chain(&err)
            ))
        })?;
        let namespaces = Api::<Namespace>::all(client.clone());
        let one = ListParams::default().limit(1);
        let probe = namespaces.list_metadata(&one);
        match tokio::time::timeout(options.api_timeout, probe).await {
            Ok(Ok(_)) => Ok(Self::new(client, options)),
            Ok(Err(kube::Error::Api(status))) => Err(unavailable(format!(
                "the API server at {server} ({source}) refused to list namespaces ({} {}: {}); \
                 grant tenantry's identity the permissions listed in the docs of \
                 tenantry_compute::kubernetes, or use another kubeconfig",
                status.code, status.reason, status.message,
            ))),
            Ok(Err(err)) => Err(unavailable(format!(
                "could not reach the API server at {server} ({source}): {}; {HINT}",
                chain(&err),
            ))),
            Err(_) => Err(unavailable(format!(
                "the API server at {server} ({source}) did not answer within {:?}; {HINT}",
                options.api_timeout,
            ))),
        }
    }

    /// A runtime over a client that is already connected; nothing is checked.
    pub fn new(client: Client, options: KubernetesOptions) -> Self {
        Self { client, options }
    }

    /// The options tenants are rendered with.
    pub fn options(&self) -> &KubernetesOptions {
        &self.options
    }

    /// Runs `call` within the API timeout.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.api_timeout, call).await {
            Ok(result) => result.map_err(|err| api_error(what, err)),
            Err(_) => Err(unavailable(format!(
                "{what}: the API server did not answer within {:?}",
                self.options.api_timeout
            ))),
        }
    }

    /// [`Self::bounded`] for deletes and scale-downs, where an object already gone (404) — or,
    /// with `conflict_is_done`, already being deleted (409) — is success.
    async fn bounded_idempotent<T>(
        &self,
        what: &str,
        conflict_is_done: bool,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<()> {
        let call = async {
            match call.await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status))
                    if status.is_not_found() || (conflict_is_done && status.is_conflict()) =>
                {
                    Ok(())
                }
                Err(err) => Err(err),
            }
        };
        self.bounded(what, call).await
    }

    async fn apply<K>(&self, api: Api<K>, object: &K) -> Result<K>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let what = format!(
            "applying {} {}{}",
            K::kind(&Default::default()),
            object
                .meta()
                .namespace
                .as_deref()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default(),
            name
        );
        let params = PatchParams::apply(&self.options.field_manager).force();
        self.bounded(&what, api.patch(&name, &params, &Patch::Apply(object)))
            .await
    }

    /// Applies every object in order; returns the Deployment's `metadata.generation` after
    /// the apply, which its status must have observed before it counts as ready.
    async fn apply_all(&self, namespace: &str, objects: &[TenantObject]) -> Result<i64> {
        let mut generation = 0;
        let mut has_ingress = false;
        for object in objects {
            let c = self.client.clone();
            match object {
                TenantObject::Namespace(o) => {
                    self.apply(Api::all(c), o).await?;
                }
                TenantObject::Secret(o) => {
                    self.apply(Api::namespaced(c, namespace), o).await?;
                }
                TenantObject::Deployment(o) => {
                    let applied = self.apply(Api::namespaced(c, namespace), o).await?;
                    generation = applied.metadata.generation.unwrap_or_default();
                }
                TenantObject::Service(o) => {
                    self.apply(Api::namespaced(c, namespace), o).await?;
                }
                TenantObject::Ingress(o) => {
                    has_ingress = true;
                    self.apply(Api::namespaced(c, namespace), o).await?;
                }
            }
        }
        if !has_ingress {
            // The tenant's last domain went away: so does its Ingress.
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), namespace);
            let what = format!("deleting Ingress {namespace}/{APP_NAME}");
            self.bounded_idempotent(&what, false, api.delete(APP_NAME, &DeleteParams::default()))
                .await?;
        }
        Ok(generation)
    }

    /// Waits until the rollout of `generation` has an available pod, or the readiness timeout.
    async fn await_ready(&self, tenant: TenantId, namespace: &str, generation: i64) -> Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let ready = move |d: Option<&Deployment>| d.is_some_and(|d| rolled_out(d, generation));
        let timeout = self.options.readiness_timeout;
        match tokio::time::timeout(timeout, await_condition(api.clone(), APP_NAME, ready)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(ComputeError::Runtime(format!(
                "watching Deployment {namespace}/{APP_NAME}: {}",
                chain(&err)
            ))),
            Err(_) => {
                let what = format!("reading Deployment {namespace}/{APP_NAME}");
                let detail = match self.bounded(&what, api.get_opt(APP_NAME)).await {
                    Ok(Some(d)) => self.describe_unready(namespace, &d).await,
                    Ok(None) => "the Deployment disappeared".to_owned(),
                    Err(err) => err.to_string(),
                };
                Err(ComputeError::Unhealthy {
                    tenant,
                    secs: timeout.as_secs(),
                    detail,
                })
            }
        }
    }

    /// Why a Deployment has no available pod: its replica counts, its failing conditions and
    /// what its pods' containers are waiting for (`ImagePullBackOff`, `CrashLoopBackOff`, …).
    async fn describe_unready(&self, namespace: &str, deployment: &Deployment) -> String {
        let mut detail = describe_deployment(deployment);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = format!("app.kubernetes.io/name={APP_NAME}");
        let what = format!("listing pods in {namespace}");
        if let Ok(list) = self
            .bounded(&what, pods.list(&ListParams::default().labels(&selector)))
            .await
        {
            for pod in &list.items {
                detail.push_str(&describe_pod(pod));
            }
        }
        detail
    }

    /// The tenant's namespaces, newest last (more than one only if its slug changed).
    async fn namespaces(&self, tenant: TenantId) -> Result<Vec<Namespace>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!("{LABEL_TENANT_ID}={tenant},{LABEL_MANAGED_BY}=tenantry");
        let what = format!("listing the namespaces of tenant {tenant}");
        let list = self
            .bounded(&what, api.list(&ListParams::default().labels(&selector)))
            .await?;
        let mut items = list.items;
        items.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        Ok(items)
    }
}

#[async_trait::async_trait]
impl ComputeRuntime for KubernetesRuntime {
    fn name(&self) -> &'static str {
        RUNTIME
    }

    async fn ensure_running(&self, spec: &ComputeSpec) -> Result<ComputeStatus> {
        check_spec(spec)?;
        let namespace = namespace_name(spec, &self.options);
        let objects = render(spec, &self.options);
        let generation = self.apply_all(&namespace, &objects).await?;
        tracing::debug!(tenant = %spec.tenant, %namespace, generation, "applied; awaiting readiness");
        self.await_ready(spec.tenant, &namespace, generation)
            .await?;
        Ok(ComputeStatus {
            state: ComputeState::Running,
            endpoint: Some(service_url(&namespace)),
            detail: None,
        })
    }

    async fn stop(&self, tenant: TenantId) -> Result<()> {
        for ns in self.namespaces(tenant).await? {
            let namespace = ns.metadata.name.unwrap_or_default();
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
            let params = PatchParams {
                field_manager: Some(format!("{}-stop", self.options.field_manager)),
                ..PatchParams::default()
            };
            let scale = Patch::Merge(serde_json::json!({ "spec": { "replicas": 0 } }));
            let what = format!("scaling Deployment {namespace}/{APP_NAME} to 0");
            self.bounded_idempotent(&what, false, api.patch_scale(APP_NAME, &params, &scale))
                .await?;
        }
        Ok(())
    }

    async fn remove(&self, tenant: TenantId) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        for ns in self.namespaces(tenant).await? {
            let namespace = ns.metadata.name.unwrap_or_default();
            let what = format!("deleting namespace {namespace}");
            // Deletion goes on in the background: `status` says Stopped, "being deleted",
            // until the namespace is gone; deleting it again meanwhile is a 409, and done.
            let background = DeleteParams::background();
            let delete = api.delete(&namespace, &background);
            self.bounded_idempotent(&what, true, delete).await?;
        }
        Ok(())
    }

    async fn status(&self, tenant: TenantId) -> Result<ComputeStatus> {
        let Some(ns) = self.namespaces(tenant).await?.pop() else {
            return Ok(ComputeStatus::absent());
        };
        let namespace = ns.metadata.name.clone().unwrap_or_default();
        let endpoint = Some(service_url(&namespace));
        if ns.metadata.deletion_timestamp.is_some() {
            return Ok(ComputeStatus {
                state: ComputeState::Stopped,
                endpoint: None,
                detail: Some(format!("namespace {namespace} is being deleted")),
            });
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let what = format!("reading Deployment {namespace}/{APP_NAME}");
        let Some(deployment) = self.bounded(&what, api.get_opt(APP_NAME)).await? else {
            return Ok(ComputeStatus {
                detail: Some(format!(
                    "namespace {namespace} has no Deployment {APP_NAME}"
                )),
                ..ComputeStatus::absent()
            });
        };
        let status = match observed_state(&deployment) {
            ComputeState::Unhealthy => ComputeStatus {
                state: ComputeState::Unhealthy,
                endpoint,
                detail: Some(self.describe_unready(&namespace, &deployment).await),
            },
            state => ComputeStatus {
                state,
                endpoint,
                detail: None,
            },
        };
        Ok(status)
    }
}

/// Stopped when scaled to zero, Running with an available pod, Unhealthy otherwise.
pub(crate) fn observed_state(deployment: &Deployment) -> ComputeState {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if wanted == 0 {
        ComputeState::Stopped
    } else if available >= 1 {
        ComputeState::Running
    } else {
        ComputeState::Unhealthy
    }
}

/// The rollout of `generation` is done: the controller has seen it, a pod of it is available,
/// and no pod of an older version is left (the check of `kubectl rollout status`). Without the
/// generation check, a re-apply would count as ready on the old pod's strength.
pub(crate) fn rolled_out(deployment: &Deployment, generation: i64) -> bool {
    let Some(status) = &deployment.status else {
        return false;
    };
    let observed = status.observed_generation.unwrap_or(-1);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    observed >= generation && updated >= 1 && available >= 1 && total <= updated
}

fn describe_deployment(deployment: &Deployment) -> String {
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let mut detail = format!(
        "{} of {wanted} replicas available, {} updated",
        status.available_replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
    );
    for c in status.conditions.iter().flatten() {
        if c.status.as_deref() != Some("True") {
            detail.push_str(&format!(
                "; {} {}: {}",
                c.type_.as_deref().unwrap_or("?"),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ));
        }
    }
    detail
}

fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let mut out = String::new();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    for cs in statuses.into_iter().flatten() {
        let Some(state) = &cs.state else { continue };
        if let Some(waiting) = &state.waiting {
            out.push_str(&format!(
                "; pod {name}: {} {}",
                waiting.reason.as_deref().unwrap_or("waiting"),
                waiting.message.as_deref().unwrap_or("")
            ));
        } else if let Some(terminated) = &state.terminated {
            out.push_str(&format!(
                "; pod {name}: exited {} {}",
                terminated.exit_code,
                terminated.reason.as_deref().unwrap_or("")
            ));
        }
    }
    out
}

fn unavailable(reason: String) -> ComputeError {
    ComputeError::Unavailable {
        runtime: RUNTIME,
        reason,
    }
}

/// Connection failures make the runtime unavailable; refusals by the API server (validation,
/// permissions, a namespace being deleted) are runtime errors carrying its status.
fn api_error(what: &str, err: kube::Error) -> ComputeError {
    match err {
        kube::Error::Api(status) => ComputeError::Runtime(format!(
            "{what}: the API server answered {} {}: {}",
            status.code, status.reason, status.message
        )),
        err @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => unavailable(format!(
            "{what}: the API server could not be reached: {}",
            chain(&err)
        )),
        err => ComputeError::Runtime(format!("{what}: {}", chain(&err))),
    }
}

/// An error and its sources, joined with `: ` — kube's own messages ("ServiceError: client
/// error (Connect)") hide the cause ("Connection refused") in the chain.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn config_source() -> String {
    match std::env::var_os("KUBECONFIG") {
        Some(path) => format!("from KUBECONFIG={}", path.to_string_lossy()),
        None => "from ~/.kube/config or the in-cluster service account".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn make_test_deployment(
        replicas: i32,
        generation: i64,
        status: Option<DeploymentStatus>,
    ) -> Deployment {
        let mut d = Deployment {
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            },
            status,
            ..Deployment::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    fn make_test_status(
        observed: i64,
        total: i32,
        updated: i32,
        available: i32,
    ) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(total),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    #[test]
    fn states_follow_replicas_and_availability() {
        let d = make_test_deployment(0, 1, Some(make_test_status(1, 0, 0, 0)));
        assert_eq!(observed_state(&d), ComputeState::Stopped);
        let d = make_test_deployment(1, 1, Some(make_test_status(1, 1, 1, 1)));
        assert_eq!(observed_state(&d), ComputeState::Running);
        let d = make_test_deployment(1, 1, Some(make_test_status(1, 1, 1, 0)));
        assert_eq!(observed_state(&d), ComputeState::Unhealthy);
        let d = make_test_deployment(1, 1, None);
        assert_eq!(observed_state(&d), ComputeState::Unhealthy);
    }

    #[test]
    fn a_rollout_is_done_only_for_the_applied_generation() {
        // The old pod is available, but the controller has not seen generation 2 yet.
        let d = make_test_deployment(1, 2, Some(make_test_status(1, 1, 1, 1)));
        assert!(!rolled_out(&d, 2));
        // Seen, the new pod is up, the old one not yet gone.
        let d = make_test_deployment(1, 2, Some(make_test_status(2, 2, 1, 1)));
        assert!(!rolled_out(&d, 2));
        // Seen, new pod not available.
        let d = make_test_deployment(1, 2, Some(make_test_status(2, 1, 1, 0)));
        assert!(!rolled_out(&d, 2));
        let d = make_test_deployment(1, 2, Some(make_test_status(2, 1, 1, 1)));
        assert!(rolled_out(&d, 2));
        assert!(!rolled_out(&make_test_deployment(1, 2, None), 2));
    }

    #[test]
    fn refusals_are_runtime_errors_and_lost_connections_unavailable() {
        let status = kube::core::Status::failure("namespace is being terminated", "Forbidden")
            .with_code(403);
        let err = api_error("applying Secret", kube::Error::Api(status.boxed()));
        assert!(
            matches!(&err, ComputeError::Runtime(m) if m.contains("403") && m.contains("being terminated")),
            "{err}"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = api_error("listing", kube::Error::Service(Box::new(io)));
        assert!(matches!(err, ComputeError::Unavailable { .. }), "{err}");
    }
}
