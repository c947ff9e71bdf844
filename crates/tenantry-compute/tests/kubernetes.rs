//! The Kubernetes runtime without a cluster: what it renders for a tenant (environment, secret
//! references, resource caps, ingress rules, determinism), that kubectl accepts the YAML offline,
//! and that an unreachable cluster is reported as `Unavailable`, quickly.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tenantry_compute::kubernetes::manifests::{
    ANNOTATION_SECRET_CHECKSUM, REDACTED, SECRET_NAME, check_spec,
};
use tenantry_compute::kubernetes::{
    KubernetesOptions, KubernetesRuntime, TenantObject, render, render_redacted, to_yaml,
};
use tenantry_compute::{ComputeError, ComputeRuntime, ComputeSpec, Resources};
use tenantry_core::TenantId;

const DATABASE_URL: &str = "postgres://t_acme:Xq7-very-secret-pw@db.internal:5432/acme";
const LICENCE: &str = "TNLIC1.eyJ0ZW5hbnQiOiJhY21lIn0.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw";

fn make_test_spec() -> ComputeSpec {
    let tenant: TenantId = "01936f0e-7b7e-7c4a-9d2e-3f1a2b3c4d5e".parse().unwrap();
    let env = BTreeMap::from([
        ("TENANT_ID".to_owned(), tenant.to_string()),
        ("TENANT_SLUG".to_owned(), "acme".to_owned()),
        ("REDIS_PREFIX".to_owned(), tenant.key_prefix()),
        (
            "STORAGE_PREFIX".to_owned(),
            format!("tenants/{}/", tenant.simple()),
        ),
        // Values a YAML 1.1 reader (kubectl's) would take for a bool, an octal number, a
        // sexagesimal number and null if they were not quoted.
        ("FEATURE_CHECKOUT".to_owned(), "yes".to_owned()),
        ("UMASK".to_owned(), "0755".to_owned()),
        ("OPENS_AT".to_owned(), "12:30".to_owned()),
        ("NOTHING".to_owned(), "null".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]);
    let secret_env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), SecretString::from(DATABASE_URL)),
        ("TENANTRY_LICENCE".to_owned(), SecretString::from(LICENCE)),
    ]);
    ComputeSpec {
        tenant,
        slug: "acme".into(),
        region: "eu-west".into(),
        plan: "pro".into(),
        env,
        secret_env,
        resources: Resources::default(),
        domains: vec!["acme.example.com".into(), "shop.acme.test".into()],
    }
}

fn deployment(objects: &[TenantObject]) -> &Deployment {
    objects
        .iter()
        .find_map(|o| match o {
            TenantObject::Deployment(d) => Some(d),
            _ => None,
        })
        .expect("a Deployment")
}

fn container(objects: &[TenantObject]) -> &Container {
    let pod = deployment(objects).spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1);
    &pod.containers[0]
}

fn secret(objects: &[TenantObject]) -> &Secret {
    objects
        .iter()
        .find_map(|o| match o {
            TenantObject::Secret(s) => Some(s),
            _ => None,
        })
        .expect("a Secret")
}

fn ingress(objects: &[TenantObject]) -> Option<&Ingress> {
    objects.iter().find_map(|o| match o {
        TenantObject::Ingress(i) => Some(i),
        _ => None,
    })
}

fn namespace(objects: &[TenantObject]) -> &Namespace {
    match &objects[0] {
        TenantObject::Namespace(n) => n,
        other => panic!("first object is a {}", other.kind()),
    }
}

fn service(objects: &[TenantObject]) -> &Service {
    objects
        .iter()
        .find_map(|o| match o {
            TenantObject::Service(s) => Some(s),
            _ => None,
        })
        .expect("a Service")
}

#[test]
fn objects_come_in_apply_order_in_the_tenants_namespace() {
    let spec = make_test_spec();
    let objects = render(&spec, &KubernetesOptions::default());
    let kinds: Vec<_> = objects.iter().map(TenantObject::kind).collect();
    assert_eq!(
        kinds,
        ["Namespace", "Secret", "Deployment", "Service", "Ingress"]
    );
    assert_eq!(objects[0].name(), "tenant-acme");
    for object in &objects[1..] {
        assert_eq!(
            object.metadata().namespace.as_deref(),
            Some("tenant-acme"),
            "{}",
            object.kind()
        );
    }
    let labels = namespace(&objects).metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "tenantry");
    assert_eq!(labels["tenantry.io/tenant-id"], spec.tenant.to_string());
    assert_eq!(labels["tenantry.io/region"], "eu-west");
    assert_eq!(labels["tenantry.io/plan"], "pro");
    // Every object carries the tenant's labels.
    for object in &objects {
        let labels = object.metadata().labels.as_ref().unwrap();
        assert_eq!(labels["tenantry.io/tenant-id"], spec.tenant.to_string());
    }
}

#[test]
fn the_container_gets_the_tenants_environment() {
    let spec = make_test_spec();
    let objects = render(&spec, &KubernetesOptions::default());
    let env = container(&objects).env.clone().unwrap();
    let plain: BTreeMap<_, _> = env
        .iter()
        .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
        .collect();
    assert_eq!(plain["TENANT_ID"], spec.tenant.to_string());
    assert_eq!(plain["REDIS_PREFIX"], spec.tenant.key_prefix());
    assert_eq!(plain["STORAGE_PREFIX"], spec.env["STORAGE_PREFIX"]);
    assert_eq!(plain.len(), spec.env.len());
}

#[test]
fn secrets_are_referenced_by_key_never_inline() {
    let spec = make_test_spec();
    let objects = render(&spec, &KubernetesOptions::default());
    let env = container(&objects).env.clone().unwrap();
    for key in spec.secret_env.keys() {
        let var = env.iter().find(|e| &e.name == key).expect(key);
        assert_eq!(var.value, None, "{key} is inline");
        let reference = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("a secretKeyRef");
        assert_eq!(reference.name, SECRET_NAME);
        assert_eq!(&reference.key, key);
    }
    // The values are in the Secret, and only there.
    let data = secret(&objects).data.clone().unwrap();
    assert_eq!(data["DATABASE_URL"].0, DATABASE_URL.as_bytes());
    assert_eq!(data["TENANTRY_LICENCE"].0, LICENCE.as_bytes());
    let deployment_json = serde_json::to_string(deployment(&objects)).unwrap();
    let deployment_yaml = to_yaml(&[TenantObject::Deployment(deployment(&objects).clone())]);
    for text in [&deployment_json, &deployment_yaml] {
        assert!(!text.contains("Xq7-very-secret-pw"), "{text}");
        assert!(!text.contains(LICENCE), "{text}");
        assert!(!text.contains("c2lnbmF0dXJl"), "{text}");
    }
}

#[test]
fn redacted_yaml_shows_no_secret_value() {
    let spec = make_test_spec();
    let options = KubernetesOptions::default();
    let yaml = to_yaml(&render_redacted(&spec, &options));
    for needle in [
        DATABASE_URL,
        "Xq7-very-secret-pw",
        LICENCE,
        "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw",
    ] {
        assert!(!yaml.contains(needle), "{needle} in\n{yaml}");
    }
    // Nor their base64, nor the checksum of the real values.
    let unredacted = render(&spec, &options);
    let checksum = pod_annotation(&unredacted, ANNOTATION_SECRET_CHECKSUM);
    assert!(!yaml.contains(&checksum));
    let unredacted_yaml = to_yaml(&unredacted);
    let data_line = unredacted_yaml
        .lines()
        .find(|l| l.trim_start().starts_with("DATABASE_URL:"))
        .unwrap();
    let base64 = data_line.split(':').nth(1).unwrap().trim();
    assert!(!yaml.contains(base64), "{base64} in\n{yaml}");
    // The keys stay visible, the values say what happened to them.
    assert!(yaml.contains("DATABASE_URL: <redacted>"), "{yaml}");
    assert!(yaml.contains("TENANTRY_LICENCE: <redacted>"), "{yaml}");
    let redacted = render_redacted(&spec, &options);
    assert_eq!(
        pod_annotation(&redacted, ANNOTATION_SECRET_CHECKSUM),
        REDACTED
    );
    // Apart from the Secret and the checksum, the redacted objects are the applied ones.
    assert_eq!(redacted[0], unredacted[0]);
    assert_eq!(redacted[3..], unredacted[3..]);
    assert_eq!(container(&redacted), container(&unredacted));
}

fn pod_annotation(objects: &[TenantObject], key: &str) -> String {
    let template = deployment(objects).spec.template.metadata.as_ref().unwrap();
    template.annotations.as_ref().unwrap()[key].clone()
}

#[test]
fn a_changed_secret_rolls_the_pods() {
    let options = KubernetesOptions::default();
    let spec = make_test_spec();
    let mut moved = make_test_spec();
    moved.secret_env.insert(
        "DATABASE_URL".into(),
        SecretString::from("postgres://t_acme:other@db2.internal:5432/acme"),
    );
    let before = pod_annotation(&render(&spec, &options), ANNOTATION_SECRET_CHECKSUM);
    let after = pod_annotation(&render(&moved, &options), ANNOTATION_SECRET_CHECKSUM);
    assert_eq!(before.len(), 64);
    assert_ne!(before, after);
}

#[test]
fn requests_and_limits_are_the_plans() {
    let options = KubernetesOptions::default();
    let mut spec = make_test_spec();
    for (memory, cpu) in [("512Mi", "500m"), ("2Gi", "2")] {
        spec.resources = Resources {
            memory: memory.into(),
            cpu: cpu.into(),
        };
        let objects = render(&spec, &options);
        let resources = container(&objects).resources.clone().unwrap();
        for caps in [resources.requests.unwrap(), resources.limits.unwrap()] {
            assert_eq!(caps["memory"].0, memory);
            assert_eq!(caps["cpu"].0, cpu);
            assert_eq!(caps.len(), 2);
        }
    }
    assert_eq!(Resources::default().memory, "512Mi");
    assert_eq!(Resources::default().cpu, "500m");
}

#[test]
fn one_ingress_rule_per_domain_and_none_without_domains() {
    let mut spec = make_test_spec();
    let options = KubernetesOptions {
        ingress_class: Some("nginx".into()),
        ..KubernetesOptions::default()
    };
    let objects = render(&spec, &options);
    let ingress_spec = ingress(&objects).unwrap().spec.clone().unwrap();
    assert_eq!(ingress_spec.ingress_class_name.as_deref(), Some("nginx"));
    let rules = ingress_spec.rules.unwrap();
    let hosts: Vec<_> = rules.iter().map(|r| r.host.clone().unwrap()).collect();
    assert_eq!(hosts, spec.domains);
    for rule in &rules {
        let paths = &rule.http.as_ref().unwrap().paths;
        assert_eq!(paths.len(), 1);
        let backend = paths[0].backend.service.as_ref().unwrap();
        assert_eq!(backend.name, "app");
        assert_eq!(backend.port.as_ref().unwrap().number, Some(80));
    }
    let default_class = render(&spec, &KubernetesOptions::default());
    let ingress_spec = ingress(&default_class).unwrap().spec.clone().unwrap();
    assert_eq!(ingress_spec.ingress_class_name, None);

    spec.domains.clear();
    let objects = render(&spec, &options);
    assert!(ingress(&objects).is_none());
    assert_eq!(objects.len(), 4);
}

#[test]
fn the_objects_fit_together() {
    // k8s-openapi serialises whatever it is given; check what an API server would refuse.
    let spec = make_test_spec();
    let options = KubernetesOptions::default();
    let objects = render(&spec, &options);
    let deployment = deployment(&objects);
    assert_eq!(deployment.spec.replicas, Some(1));
    let selector = deployment.spec.selector.match_labels.clone().unwrap();
    assert!(!selector.is_empty());
    let pod_labels = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "selector {k} does not match the pods"
        );
    }
    let service_spec = service(&objects).spec.clone().unwrap();
    assert_eq!(service_spec.type_.as_deref(), Some("ClusterIP"));
    for (k, v) in service_spec.selector.unwrap() {
        assert_eq!(pod_labels.get(&k), Some(&v), "service selector {k}");
    }
    let port = &service_spec.ports.unwrap()[0];
    assert_eq!(port.port, 80);
    let target = serde_json::to_value(port.target_port.as_ref().unwrap()).unwrap();
    assert_eq!(target, serde_json::json!(8080));

    let container = container(&objects);
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/tenantry/storefront:latest")
    );
    let ports = container.ports.clone().unwrap();
    assert_eq!(ports[0].container_port, 8080);
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        let port = serde_json::to_value(&get.port).unwrap();
        assert_eq!(port, serde_json::json!(ports[0].name.clone().unwrap()));
    }
    assert!(check_spec(&spec).is_ok());
}

#[test]
fn a_custom_port_and_image_are_used() {
    let spec = make_test_spec();
    let options = KubernetesOptions {
        image: "registry.example/app:1.2.3".into(),
        container_port: 3000,
        ..KubernetesOptions::default()
    };
    let objects = render(&spec, &options);
    let c = container(&objects);
    assert_eq!(c.image.as_deref(), Some("registry.example/app:1.2.3"));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 3000);
    let target = service(&objects)
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0]
        .target_port
        .clone()
        .unwrap();
    assert_eq!(
        serde_json::to_value(target).unwrap(),
        serde_json::json!(3000)
    );
}

#[test]
fn rendering_is_deterministic() {
    let options = KubernetesOptions::default();
    let first = render(&make_test_spec(), &options);
    let second = render(&make_test_spec(), &options);
    assert_eq!(first, second);
    assert_eq!(to_yaml(&first), to_yaml(&second));
    let redacted = to_yaml(&render_redacted(&make_test_spec(), &options));
    assert_eq!(
        redacted,
        to_yaml(&render_redacted(&make_test_spec(), &options))
    );
}

#[test]
fn the_yaml_is_a_stream_of_documents_in_apply_order() {
    let yaml = to_yaml(&render(&make_test_spec(), &KubernetesOptions::default()));
    let docs: Vec<_> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 5, "{yaml}");
    let kinds: Vec<_> = docs
        .iter()
        .map(|d| d.lines().find(|l| l.starts_with("kind: ")).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "kind: Namespace",
            "kind: Secret",
            "kind: Deployment",
            "kind: Service",
            "kind: Ingress"
        ]
    );
    // Strings a YAML 1.1 reader would mistype are quoted.
    for value in ["yes", "0755", "12:30", "null"] {
        assert!(
            !yaml.contains(&format!("value: {value}\n")),
            "{value} unquoted:\n{yaml}"
        );
    }
}

#[test]
fn specs_the_api_server_would_refuse_are_refused_first() {
    let mut spec = make_test_spec();
    spec.plan = "pro plan".into();
    assert!(matches!(check_spec(&spec), Err(ComputeError::Runtime(m)) if m.contains("plan")));
    let mut spec = make_test_spec();
    spec.resources.memory = "half a gig".into();
    assert!(matches!(check_spec(&spec), Err(ComputeError::Runtime(m)) if m.contains("memory")));
    let mut spec = make_test_spec();
    spec.domains.push("Not A Host".into());
    assert!(matches!(check_spec(&spec), Err(ComputeError::Runtime(m)) if m.contains("domain")));
    let mut spec = make_test_spec();
    spec.secret_env
        .insert("TENANT_ID".into(), SecretString::from("x"));
    assert!(matches!(check_spec(&spec), Err(ComputeError::Runtime(m)) if m.contains("TENANT_ID")));
}

// ---- kubectl, offline -------------------------------------------------------------------------

/// A kubeconfig naming a server on a closed local port: kubectl and kube both load it, and any
/// request to it is refused at once.
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:{port}
contexts:
- name: nowhere
  context:
    cluster: nowhere
    user: nobody
users:
- name: nobody
  user:
    token: not-a-token
current-context: nowhere
"
        ),
    )
    .unwrap();
    path
}

/// Runs kubectl with `stdin`, a throwaway kubeconfig and home; `None` when it is not installed.
fn kubectl(args: &[&str], stdin: &str, dir: &Path) -> Option<Output> {
    let spawned = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", unreachable_kubeconfig(dir))
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => panic!("running kubectl: {err}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

fn kubectl_missing() {
    let reason = "kubectl is not installed (Debian package `kubectl`)";
    if std::env::var_os("CI").is_some() {
        panic!("{reason}, and CI needs it");
    }
    eprintln!("skipping: {reason}");
}

/// `kubectl apply/create --dry-run=client` need the server's discovery data even with
/// `--validate=false`, so they fail without a cluster. Two `--local` commands work offline:
///
/// - `kubectl annotate --local -f - -o name …` reads the whole stream and names every object:
///   the YAML parses and each document has an apiVersion, a kind and a name;
/// - `kubectl set env --local -f - -o name …` decodes every object into kubectl's own Go type
///   for its kind — unknown kinds or versions and mistyped fields (a boolean where a string
///   belongs) fail with "unable to decode". It then edits only objects with a pod template
///   and says of the others "the object is not a pod or does not have a pod template:
///   *v1.Namespace", which shows that they decoded.
fn assert_kubectl_accepts(yaml: &str, namespace: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let expected = [
        format!("namespace/{namespace}"),
        format!("secret/{SECRET_NAME}"),
        "deployment.apps/app".to_owned(),
        "service/app".to_owned(),
        "ingress.networking.k8s.io/app".to_owned(),
    ];

    let args = [
        "annotate",
        "--local",
        "-f",
        "-",
        "-o",
        "name",
        "tenantry.io/check=offline",
    ];
    let Some(out) = kubectl(&args, yaml, dir.path()) else {
        kubectl_missing();
        return false;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl annotate: {stderr}\n{yaml}");
    let names: Vec<_> = stdout.lines().collect();
    assert_eq!(names, expected, "{stderr}");

    let args = [
        "set",
        "env",
        "--local",
        "-f",
        "-",
        "-o",
        "name",
        "TENANTRY_CHECK=offline",
    ];
    let out = kubectl(&args, yaml, dir.path()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "deployment.apps/app", "{stderr}");
    for kind in ["Namespace", "Secret", "Service", "Ingress"] {
        assert!(
            stderr.contains(&format!("does not have a pod template: *v1.{kind}")),
            "{kind} was not decoded:\n{stderr}"
        );
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let about_a_known_object = expected.iter().any(|name| {
            line.trim_start_matches("error: ")
                .starts_with(name.as_str())
        });
        assert!(
            about_a_known_object || line.contains("the object is not a pod"),
            "kubectl refused something: {line}\n{stderr}"
        );
    }
    true
}

#[test]
fn kubectl_accepts_the_manifests_offline() {
    let spec = make_test_spec();
    let options = KubernetesOptions {
        ingress_class: Some("nginx".into()),
        ..KubernetesOptions::default()
    };
    for objects in [render(&spec, &options), render_redacted(&spec, &options)] {
        if !assert_kubectl_accepts(&to_yaml(&objects), "tenant-acme") {
            return;
        }
    }
}

#[test]
fn the_offline_kubectl_check_catches_a_mistyped_field() {
    // The check above has teeth: an unquoted `yes` (a YAML 1.1 boolean) as an env value is
    // refused.
    let yaml = to_yaml(&render(&make_test_spec(), &KubernetesOptions::default()));
    let broken = yaml.replace("value: \"yes\"", "value: yes");
    assert_ne!(broken, yaml, "the fixture's quoting changed:\n{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "set",
        "env",
        "--local",
        "-f",
        "-",
        "-o",
        "name",
        "TENANTRY_CHECK=offline",
    ];
    let Some(out) = kubectl(&args, &broken, dir.path()) else {
        return kubectl_missing();
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unable to decode"), "{stderr}");
}

// ---- no cluster -------------------------------------------------------------------------------

fn quick_options() -> KubernetesOptions {
    KubernetesOptions {
        api_timeout: Duration::from_secs(5),
        readiness_timeout: Duration::from_secs(5),
        ..KubernetesOptions::default()
    }
}

async fn config_from(path: &Path) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_from(&unreachable_kubeconfig(dir.path())).await;
    let connect = KubernetesRuntime::connect_with(config, quick_options());
    let result = tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .expect("connect hung");
    match result {
        Err(ComputeError::Unavailable { runtime, reason }) => {
            assert_eq!(runtime, "kubernetes");
            assert!(reason.contains("127.0.0.1"), "{reason}");
            assert!(reason.contains("KUBECONFIG"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_to_an_unreachable_cluster_fail_quickly() {
    // A runtime made without connect's check: each call still ends in a clear error.
    let dir = tempfile::tempdir().unwrap();
    let config = config_from(&unreachable_kubeconfig(dir.path())).await;
    let client = kube::Client::try_from(config).unwrap();
    let runtime = KubernetesRuntime::new(client, quick_options());
    let spec = make_test_spec();
    let calls = async {
        let status = runtime.status(spec.tenant).await;
        let ensure = runtime.ensure_running(&spec).await;
        let stop = runtime.stop(spec.tenant).await;
        let remove = runtime.remove(spec.tenant).await;
        (status.err(), ensure.err(), stop.err(), remove.err())
    };
    let (status, ensure, stop, remove) = tokio::time::timeout(Duration::from_secs(30), calls)
        .await
        .expect("a call hung");
    for err in [status, ensure, stop, remove] {
        match err {
            Some(ComputeError::Unavailable { reason, .. }) => {
                assert!(reason.contains("could not be reached"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_after_the_api_timeout() {
    // Accepts connections (the kernel's backlog does) and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = unreachable_kubeconfig(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        &text[text.find("https://").unwrap()..text.find("\ncontexts").unwrap()],
        &format!("https://127.0.0.1:{port}"),
    );
    std::fs::write(&path, text).unwrap();
    let options = KubernetesOptions {
        api_timeout: Duration::from_secs(1),
        ..quick_options()
    };
    let started = std::time::Instant::now();
    let connect = KubernetesRuntime::connect_with(config_from(&path).await, options);
    let result = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("connect hung");
    // The TLS handshake is what never ends: kube's connect timeout or the runtime's own bound
    // (both the API timeout) ends it, whichever fires first.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match result {
        Err(ComputeError::Unavailable { reason, .. }) => {
            assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
            assert!(
                reason.contains("did not answer within") || reason.contains("deadline has elapsed"),
                "{reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    drop(listener);
}

const CHILD_MARK: &str = "TENANTRY_KUBERNETES_TEST_CHILD";
const CHILD: &str = "connect_from_the_environment_child";

/// `connect` reads KUBECONFIG from the process environment, which a test must not change while
/// other tests run on other threads: the case runs in a child process of this test binary,
/// with its own environment.
fn run_child(kubeconfig: &Path, expect: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD, "--include-ignored", "--nocapture"])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env(CHILD_MARK, expect)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
fn connect_through_kubeconfig_says_what_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    // A kubeconfig naming a closed port: the server is named, and what to do.
    run_child(
        &unreachable_kubeconfig(dir.path()),
        "could not reach the API server at",
    );
    // No usable configuration at all.
    run_child(
        &dir.path().join("missing"),
        "no cluster configuration was found",
    );
}

#[tokio::test]
#[ignore = "run by connect_through_kubeconfig_says_what_it_tried in a child process"]
async fn connect_from_the_environment_child() {
    let Ok(expect) = std::env::var(CHILD_MARK) else {
        return;
    };
    let connect = KubernetesRuntime::connect(quick_options());
    let result = tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .expect("connect hung");
    match result {
        Err(ComputeError::Unavailable { runtime, reason }) => {
            assert_eq!(runtime, "kubernetes");
            assert!(reason.contains(&expect), "{reason}");
            assert!(reason.contains("KUBECONFIG"), "{reason}");
            assert!(reason.contains("run tenantry inside a cluster"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
