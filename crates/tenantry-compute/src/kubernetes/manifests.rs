//! The Kubernetes objects of one dedicated tenant, rendered from its [`ComputeSpec`].
//!
//! Rendering is a pure function of the spec and the options, so the same input always gives the
//! same objects (server-side apply can then re-apply them at will, and snapshots stay stable).
//! It is kept apart from the runtime so that `tenantry tenant manifests SLUG` can print exactly
//! what would be applied, without a cluster.
//!
//! ## What one tenant gets
//!
//! | object | name | why |
//! |---|---|---|
//! | Namespace | `<prefix><slug>` | isolation, quotas and one-call removal; labelled with the tenant id, which is how the runtime finds it again (its methods get only the id) |
//! | Secret | `app-env` | the tenant's `secret_env` (database URL, licence), referenced by key from the Deployment |
//! | Deployment | `app` | one replica of the image, resources capped at the plan's, probed on `/healthz` |
//! | Service | `app` | a stable in-cluster address, port 80 to the container port |
//! | Ingress | `app` | one rule per domain; none when the tenant has no domain |
//!
//! The object names are fixed because the namespace already belongs to one tenant: the runtime
//! can then reach the Deployment of a tenant knowing only its namespace.
//!
//! ## Secrets
//!
//! Secret values appear in one place only: the Secret's `data`. The Deployment refers to each key
//! with `valueFrom.secretKeyRef`, and carries a SHA-256 checksum of the secret values as a pod
//! annotation so that a changed secret (a moved database, a renewed licence) rolls the pods —
//! environment taken from a Secret is read only when a container starts.
//! [`render_redacted`] replaces every value, and the checksum, with [`REDACTED`], for printing.

use crate::{ComputeError, ComputeSpec, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// The name of the Deployment, Service and Ingress in a tenant's namespace.
pub const APP_NAME: &str = "app";
/// The name of the Secret holding the tenant's `secret_env`.
pub const SECRET_NAME: &str = "app-env";
/// What [`render_redacted`] shows instead of a secret value.
pub const REDACTED: &str = "<redacted>";

/// `app.kubernetes.io/managed-by`: every object tenantry makes.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `tenantry.io/tenant-id`: how the runtime finds a tenant's namespace from its id.
pub const LABEL_TENANT_ID: &str = "tenantry.io/tenant-id";
/// `tenantry.io/region`.
pub const LABEL_REGION: &str = "tenantry.io/region";
/// `tenantry.io/plan`.
pub const LABEL_PLAN: &str = "tenantry.io/plan";
/// `app.kubernetes.io/name`: with the tenant id, the Deployment's (immutable) selector.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Pod annotation carrying the checksum of the secret values (see the module doc).
pub const ANNOTATION_SECRET_CHECKSUM: &str = "tenantry.io/secret-checksum";

const MANAGER: &str = "tenantry";
const SERVICE_PORT: i32 = 80;
const PORT_NAME: &str = "http";
const HEALTH_PATH: &str = "/healthz";

/// How tenants are laid out on the cluster. Built by the binary from its configuration and
/// passed to [`render`] and to [`super::KubernetesRuntime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// The application image every dedicated tenant runs.
    pub image: String,
    /// Prefix of the tenant namespaces: `<prefix><slug>`.
    pub namespace_prefix: String,
    /// `ingressClassName` of the tenants' Ingresses; `None` leaves it to the cluster's default
    /// class.
    pub ingress_class: Option<String>,
    /// The port the application listens on inside its container.
    pub container_port: u16,
    /// The server-side-apply field manager: the owner of every field tenantry sets.
    pub field_manager: String,
    /// How long `ensure_running` waits for the Deployment to become available.
    pub readiness_timeout: Duration,
    /// Bound on each API call other than the readiness wait, and on reaching the API server
    /// when connecting: a black-holed server gives an error instead of a hang.
    pub api_timeout: Duration,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        Self {
            image: "ghcr.io/tenantry/storefront:latest".into(),
            namespace_prefix: "tenant-".into(),
            ingress_class: None,
            container_port: 8080,
            field_manager: MANAGER.into(),
            readiness_timeout: Duration::from_secs(120),
            api_timeout: Duration::from_secs(15),
        }
    }
}

impl KubernetesOptions {
    /// Checks what the API server would otherwise reject on every tenant: an image, a
    /// namespace prefix that can start a DNS label, a non-zero port, a field manager.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |what: String| Err(ComputeError::Runtime(format!("kubernetes options: {what}")));
        if self.image.trim().is_empty() {
            return invalid("the image is empty".into());
        }
        let prefix_ok = self.namespace_prefix.len() <= 40
            && self
                .namespace_prefix
                .starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .namespace_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !prefix_ok {
            return invalid(format!(
                "namespace prefix {:?} must be at most 40 characters of a-z, 0-9 and '-', starting with a letter",
                self.namespace_prefix
            ));
        }
        if self.container_port == 0 {
            return invalid("the container port is 0".into());
        }
        if self.field_manager.trim().is_empty() {
            return invalid("the field manager is empty".into());
        }
        if let Some(class) = &self.ingress_class
            && !is_dns_subdomain(class)
        {
            return invalid(format!(
                "ingress class {class:?} is not a DNS subdomain name"
            ));
        }
        Ok(())
    }
}

/// One of a tenant's objects, in the order they are applied.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "five per tenant, made once per apply: boxing the Deployment would only complicate matching"
)]
pub enum TenantObject {
    Namespace(Namespace),
    Secret(Secret),
    Deployment(Deployment),
    Service(Service),
    Ingress(Ingress),
}

impl TenantObject {
    /// The object's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            TenantObject::Namespace(_) => "Namespace",
            TenantObject::Secret(_) => "Secret",
            TenantObject::Deployment(_) => "Deployment",
            TenantObject::Service(_) => "Service",
            TenantObject::Ingress(_) => "Ingress",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            TenantObject::Namespace(o) => &o.metadata,
            TenantObject::Secret(o) => &o.metadata,
            TenantObject::Deployment(o) => &o.metadata,
            TenantObject::Service(o) => &o.metadata,
            TenantObject::Ingress(o) => &o.metadata,
        }
    }

    /// The object's name (every rendered object has one).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}

impl Serialize for TenantObject {
    // Each k8s-openapi type writes its own `apiVersion` and `kind`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            TenantObject::Namespace(o) => o.serialize(s),
            TenantObject::Secret(o) => o.serialize(s),
            TenantObject::Deployment(o) => o.serialize(s),
            TenantObject::Service(o) => o.serialize(s),
            TenantObject::Ingress(o) => o.serialize(s),
        }
    }
}

/// The tenant's objects, secret values included: what the runtime applies.
pub fn render(spec: &ComputeSpec, options: &KubernetesOptions) -> Vec<TenantObject> {
    render_with(spec, options, Secrets::Include)
}

/// The tenant's objects with every secret value (and the secret checksum) replaced by
/// [`REDACTED`]: what may be shown to people. Not for applying — the Secret would hold
/// `<redacted>`.
pub fn render_redacted(spec: &ComputeSpec, options: &KubernetesOptions) -> Vec<TenantObject> {
    render_with(spec, options, Secrets::Redact)
}

/// Whether rendered objects carry the secret values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    Include,
    Redact,
}

fn render_with(
    spec: &ComputeSpec,
    options: &KubernetesOptions,
    secrets: Secrets,
) -> Vec<TenantObject> {
    let namespace = namespace_name(spec, options);
    let mut objects = vec![
        TenantObject::Namespace(namespace_object(spec, &namespace)),
        TenantObject::Secret(secret(spec, &namespace, secrets)),
        TenantObject::Deployment(deployment(spec, options, &namespace, secrets)),
        TenantObject::Service(service(spec, options, &namespace)),
    ];
    if let Some(ingress) = ingress(spec, options, &namespace) {
        objects.push(TenantObject::Ingress(ingress));
    }
    objects
}

/// A multi-document YAML stream (`---` between documents) in the order given, which for
/// [`render`]'s output is apply order. Strings that YAML 1.1 readers such as kubectl would take
/// for booleans, numbers or null (`yes`, `0755`, `12:30`, …) are quoted.
pub fn to_yaml(objects: &[TenantObject]) -> String {
    let mut out = String::new();
    for object in objects {
        if !out.is_empty() {
            out.push_str("---\n");
        }
        match serde_saphyr::to_string_with_options(object, yaml_options()) {
            Ok(doc) => out.push_str(&doc),
            // Not reachable with k8s-openapi types (string keys, no fallible Serialize impls);
            // kept visible rather than panicking.
            Err(err) => out.push_str(&format!(
                "# {} {} could not be rendered: {err}\n",
                object.kind(),
                object.name()
            )),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// serde-saphyr's defaults (YAML 1.1-safe quoting), but long strings on one line rather than
/// folded (`>-`): a base64 Secret value or a long variable then reads as it is.
fn yaml_options() -> serde_saphyr::SerializerOptions {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    options
}

/// The tenant's namespace: `<prefix><slug>`, or — when that is longer than a DNS label's 63
/// characters — the slug cut short and followed by 8 hex digits of the tenant id, so that it
/// still fits and stays unique. The runtime finds namespaces by label, never by name.
pub fn namespace_name(spec: &ComputeSpec, options: &KubernetesOptions) -> String {
    let name = format!("{}{}", options.namespace_prefix, spec.slug);
    if name.len() <= 63 {
        return name;
    }
    let id = spec.tenant.simple();
    let keep = 63usize.saturating_sub(options.namespace_prefix.len() + 9);
    let slug: String = spec.slug.chars().take(keep).collect();
    format!(
        "{}{}-{}",
        options.namespace_prefix,
        slug.trim_end_matches('-'),
        &id[..8]
    )
}

/// The in-cluster address of a tenant's Service.
pub fn service_url(namespace: &str) -> String {
    format!("http://{APP_NAME}.{namespace}.svc")
}

/// Checks what the API server would reject in the spec, so that `ensure_running` fails before
/// applying anything, with a message naming the field: label values (region, plan), Secret keys,
/// environment names, domains, and the resource quantities.
pub fn check_spec(spec: &ComputeSpec) -> Result<()> {
    let invalid = |what: String| {
        Err(ComputeError::Runtime(format!(
            "tenant {} cannot run on kubernetes: {what}",
            spec.tenant
        )))
    };
    for (label, value) in [("region", &spec.region), ("plan", &spec.plan)] {
        if !is_label_value(value) {
            return invalid(format!(
                "its {label} {value:?} is not a valid label value (at most 63 characters of \
                 a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit)"
            ));
        }
    }
    for key in spec.secret_env.keys() {
        if key.is_empty()
            || key.len() > 253
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return invalid(format!(
                "secret key {key:?} may hold only a-z, A-Z, 0-9, '-', '_' and '.'"
            ));
        }
    }
    // The rule of Kubernetes before 1.34 (which later relaxed it), so that any cluster takes it.
    for name in spec.env.keys().chain(spec.secret_env.keys()) {
        let ok = name
            .starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.'))
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return invalid(format!(
                "environment name {name:?} must be a-z, A-Z, 0-9, '-', '_' and '.', not starting with a digit"
            ));
        }
    }
    if let Some(both) = spec.env.keys().find(|k| spec.secret_env.contains_key(*k)) {
        return invalid(format!("{both} is both a plain and a secret variable"));
    }
    for domain in &spec.domains {
        if !is_dns_subdomain(domain) {
            return invalid(format!("domain {domain:?} is not a valid host name"));
        }
    }
    for (what, value) in [
        ("memory", &spec.resources.memory),
        ("cpu", &spec.resources.cpu),
    ] {
        if !is_quantity(value) {
            return invalid(format!(
                "its {what} {value:?} is not a Kubernetes quantity (e.g. 512Mi, 500m)"
            ));
        }
    }
    Ok(())
}

fn labels(spec: &ComputeSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (LABEL_TENANT_ID.to_owned(), spec.tenant.to_string()),
        (LABEL_REGION.to_owned(), spec.region.clone()),
        (LABEL_PLAN.to_owned(), spec.plan.clone()),
    ])
}

/// Labels of the Deployment's pods; its selector is the part of them that never changes.
fn app_labels(spec: &ComputeSpec) -> BTreeMap<String, String> {
    let mut labels = labels(spec);
    labels.extend(selector(spec));
    labels
}

fn selector(spec: &ComputeSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_TENANT_ID.to_owned(), spec.tenant.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn namespace_object(spec: &ComputeSpec, namespace: &str) -> Namespace {
    Namespace {
        metadata: meta(namespace, None, labels(spec)),
        ..Namespace::default()
    }
}

fn secret(spec: &ComputeSpec, namespace: &str, secrets: Secrets) -> Secret {
    let mut secret = Secret {
        metadata: meta(SECRET_NAME, Some(namespace), labels(spec)),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match secrets {
        // `data`, not `stringData`: with server-side apply the manager then owns each key of
        // `data`, so a key dropped from the spec is dropped from the Secret.
        Secrets::Include => {
            secret.data = Some(
                spec.secret_env
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.expose_secret().as_bytes().to_vec())))
                    .collect(),
            );
        }
        // `stringData` so that people read `<redacted>` rather than its base64.
        Secrets::Redact => {
            secret.string_data = Some(
                spec.secret_env
                    .keys()
                    .map(|k| (k.clone(), REDACTED.to_owned()))
                    .collect(),
            );
        }
    }
    secret
}

/// SHA-256 over the secret keys and values, length-prefixed so that no two maps collide.
fn secret_checksum(spec: &ComputeSpec) -> String {
    let mut hash = Sha256::new();
    for (key, value) in &spec.secret_env {
        let value = value.expose_secret().as_bytes();
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key.as_bytes());
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value);
    }
    hex::encode(hash.finalize())
}

fn env(spec: &ComputeSpec) -> Vec<EnvVar> {
    let plain = spec.env.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        value_from: None,
    });
    let secret = spec.secret_env.keys().map(|name| EnvVar {
        name: name.clone(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: SECRET_NAME.to_owned(),
                key: name.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    });
    plain.chain(secret).collect()
}

fn http_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.to_owned()),
            port: IntOrString::String(PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn deployment(
    spec: &ComputeSpec,
    options: &KubernetesOptions,
    namespace: &str,
    secrets: Secrets,
) -> Deployment {
    // Requests equal limits: the tenant gets exactly what its plan pays for (Guaranteed QoS),
    // never more at a neighbour's expense.
    let caps = BTreeMap::from([
        ("cpu".to_owned(), Quantity(spec.resources.cpu.clone())),
        ("memory".to_owned(), Quantity(spec.resources.memory.clone())),
    ]);
    let checksum = match secrets {
        Secrets::Include => secret_checksum(spec),
        Secrets::Redact => REDACTED.to_owned(),
    };
    let container = Container {
        name: APP_NAME.to_owned(),
        image: Some(options.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: i32::from(options.container_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env(spec)),
        resources: Some(ResourceRequirements {
            requests: Some(caps.clone()),
            limits: Some(caps),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(http_probe(5, 3)),
        liveness_probe: Some(http_probe(10, 6)),
        ..Container::default()
    };
    Deployment {
        metadata: meta(APP_NAME, Some(namespace), app_labels(spec)),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector(spec)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app_labels(spec)),
                    annotations: Some(BTreeMap::from([(
                        ANNOTATION_SECRET_CHECKSUM.to_owned(),
                        checksum,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The application has no business with the Kubernetes API.
                    automount_service_account_token: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn service(spec: &ComputeSpec, options: &KubernetesOptions, namespace: &str) -> Service {
    Service {
        metadata: meta(APP_NAME, Some(namespace), app_labels(spec)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(spec)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(i32::from(options.container_port))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn ingress(spec: &ComputeSpec, options: &KubernetesOptions, namespace: &str) -> Option<Ingress> {
    if spec.domains.is_empty() {
        return None;
    }
    let rules = spec
        .domains
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".into()),
                    path_type: "Prefix".into(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: APP_NAME.to_owned(),
                            port: Some(ServiceBackendPort {
                                number: Some(SERVICE_PORT),
                                name: None,
                            }),
                        }),
                        resource: None,
                    },
                }],
            }),
        })
        .collect();
    Some(Ingress {
        metadata: meta(APP_NAME, Some(namespace), app_labels(spec)),
        spec: Some(IngressSpec {
            ingress_class_name: options.ingress_class.clone(),
            rules: Some(rules),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// A plain decimal number with an optional binary (`Ki`…`Ei`), decimal (`k`…`E`) or milli
/// (`m`) suffix: the forms plans use. Exponent forms (`1e3`) are refused.
fn is_quantity(value: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|s| value.strip_suffix(s))
        .unwrap_or(value);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resources;
    use tenantry_core::TenantId;

    fn make_test_spec(slug: &str) -> ComputeSpec {
        ComputeSpec {
            tenant: TenantId::generate(),
            slug: slug.into(),
            region: "eu-west".into(),
            plan: "pro".into(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            resources: Resources::default(),
            domains: vec![],
        }
    }

    #[test]
    fn namespace_names_fit_a_dns_label() {
        let options = KubernetesOptions::default();
        let short = make_test_spec("acme");
        assert_eq!(namespace_name(&short, &options), "tenant-acme");
        let long = make_test_spec(&format!("a{}", "-b".repeat(31)));
        let name = namespace_name(&long, &options);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with(&long.tenant.simple()[..8]), "{name}");
        assert!(!name.contains("--"), "{name}");
    }

    #[test]
    fn quantities_are_checked() {
        for ok in ["512Mi", "500m", "1", "0.5", "2Gi", "1.5G"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Mi", "512 Mi", "-1", "1.", "lots", "1e3"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn label_values_are_checked() {
        let mut spec = make_test_spec("acme");
        assert!(check_spec(&spec).is_ok());
        spec.region = "eu west".into();
        let err = check_spec(&spec).unwrap_err().to_string();
        assert!(err.contains("region"), "{err}");
    }

    #[test]
    fn options_are_checked() {
        assert!(KubernetesOptions::default().validate().is_ok());
        let options = KubernetesOptions {
            namespace_prefix: "Tenant_".into(),
            ..KubernetesOptions::default()
        };
        assert!(options.validate().is_err());
    }
}
