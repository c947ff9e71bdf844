//! `tenantry.toml`: one file, typed, validated once at load, then passed explicitly.
//!
//! The file is found by `--config PATH`, then `$TENANTRY_CONFIG`, then `./tenantry.toml`.
//! Environment variables `TENANTRY_<SECTION>__<KEY>` override single values (for example
//! `TENANTRY_CATALOG__URL`). Relative paths in the file are relative to the file's directory,
//! so a configuration works from wherever the binary is started.

use crate::ids::Slug;
use crate::isolation::Engine;
use crate::placement::{Override, Plan, Rule, SchemaFallback};
use crate::shard::ShardState;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The commented default configuration `tenantry init` writes: everything on SQLite.
pub const DEFAULT_TOML: &str = concat!(
    include_str!("default_sqlite.toml"),
    include_str!("default_common.toml")
);

const POSTGRES_HEAD: &str = include_str!("default_postgres.toml");

/// The default configuration with the catalog and one shard per region on the PostgreSQL
/// server of `admin_url` (a superuser URL such as `postgres://postgres@127.0.0.1:5432/postgres`);
/// the catalog lives in its database `tenantry_catalog`.
/// Turns on the `[infrastructure]` section the default files carry commented out (what
/// `tenantry init` does when it finds Terraform).
pub fn enable_infrastructure(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest == "[infrastructure]"
                    || ["terraform =", "modules =", "work ="]
                        .iter()
                        .any(|k| rest.starts_with(k)) =>
            {
                rest
            }
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Where `program` is: itself when it is a path to a file, else the first match on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let given = Path::new(program);
    if given.components().count() > 1 {
        return given.is_file().then(|| given.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub fn default_toml_postgres(admin_url: &str) -> String {
    let server = admin_url
        .split('?')
        .next()
        .unwrap_or(admin_url)
        .rsplit_once('/')
        .map(|(server, _)| server)
        .unwrap_or(admin_url);
    let head = POSTGRES_HEAD
        .replace("{{catalog_url}}", &format!("{server}/tenantry_catalog"))
        .replace("{{admin_url}}", admin_url);
    format!("{head}{}", include_str!("default_common.toml"))
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the catalog (tenants, audit, outbox, operations) is stored.
    pub catalog: CatalogConfig,
    /// Where tenants' files are kept.
    pub storage: StorageConfig,
    /// The tenant application whose schema every tenant space receives.
    pub application: ApplicationConfig,
    /// Residency units, by name (`eu-west`).
    pub regions: BTreeMap<String, RegionConfig>,
    /// Database servers (or SQLite directories), each in one region.
    #[serde(default)]
    pub shards: Vec<ShardConfig>,
    /// Plans, by name, with their defaults.
    pub plans: BTreeMap<String, Plan>,
    /// How tenants are placed beyond their plan's defaults.
    #[serde(default)]
    pub placement: PlacementConfig,
    /// Where the master key that seals tenant credentials comes from.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Where lifecycle events are delivered.
    #[serde(default)]
    pub events: EventsConfig,
    /// The REST API of `tenantry serve`.
    #[serde(default)]
    pub server: ServerConfig,
    /// Per-tenant infrastructure through Terraform; absent, the infrastructure API says so.
    #[serde(default)]
    pub infrastructure: Option<InfrastructureConfig>,
    /// Where dedicated tenants' own compute runs.
    #[serde(default)]
    pub compute: ComputeConfig,
    /// The reconciler of `tenantry serve`.
    #[serde(default)]
    pub reconciler: ReconcilerConfig,
    /// The file the configuration was loaded from (absolute), handed to the processes it starts.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The directory the file was loaded from; relative paths were resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// The catalog store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// `sqlite://PATH` (created when missing) or, later, `postgres://…`.
    pub url: String,
}

/// Tenant storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` (the default: files under `root`) or `s3` (an S3-compatible bucket, `[storage.s3]`).
    #[serde(default)]
    pub backend: StorageBackend,
    /// Root directory of the local backend; each tenant gets
    /// `<root>/<region>/tenants/<tenant id>/`.
    pub root: PathBuf,
    /// The bucket of the `s3` backend.
    #[serde(default)]
    pub s3: Option<S3Config>,
}

/// Where tenants' objects are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

/// An S3-compatible bucket. Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from this file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// A prefix inside the bucket before `<region>/tenants/<tenant id>/`.
    #[serde(default)]
    pub prefix: String,
    /// The endpoint of an S3-compatible server (MinIO, Ceph…); AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket's AWS region.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Allow a plain-HTTP endpoint (a local test server).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

/// `[reconciler]`: how often `tenantry serve` compares every tenant's declared state with what
/// it observes, and repairs the difference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilerConfig {
    /// Seconds between passes; 0 turns the reconciler off.
    #[serde(default = "default_reconciler_interval")]
    pub interval_secs: u64,
    /// Tenants each pass looks at, the next ones each time (a fleet of 20,000 with 2,000 per
    /// pass is covered every ten passes); 0: every tenant every pass.
    #[serde(default)]
    pub tenants_per_pass: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_reconciler_interval(),
            tenants_per_pass: 0,
        }
    }
}

fn default_reconciler_interval() -> u64 {
    30
}

/// `[compute]`: how dedicated tenants' own compute runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    /// `process` (the default: a local process per tenant) or `kubernetes`.
    #[serde(default)]
    pub runtime: ComputeRuntimeKind,
    /// Where the process runtime keeps each tenant's process record and log.
    #[serde(default = "default_compute_directory")]
    pub directory: PathBuf,
    /// The address tenants' processes listen on.
    #[serde(default = "default_compute_host")]
    pub host: String,
    /// The program tenants' processes run [default: this `tenantry` binary].
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// How long a tenant's compute has to answer its health check when it starts.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_secs: u64,
    /// The Kubernetes runtime.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            runtime: ComputeRuntimeKind::default(),
            directory: default_compute_directory(),
            host: default_compute_host(),
            program: None,
            health_timeout_secs: default_health_timeout(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

fn default_compute_directory() -> PathBuf {
    PathBuf::from("data/compute")
}

fn default_compute_host() -> String {
    "127.0.0.1".into()
}

fn default_health_timeout() -> u64 {
    30
}

/// The runtime of dedicated compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeRuntimeKind {
    #[default]
    Process,
    Kubernetes,
}

impl ComputeRuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeRuntimeKind::Process => "process",
            ComputeRuntimeKind::Kubernetes => "kubernetes",
        }
    }
}

/// `[compute.kubernetes]`: what each dedicated tenant's Deployment runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The application's container image.
    #[serde(default = "default_image")]
    pub image: String,
    /// Each tenant's Namespace is this prefix and its slug.
    #[serde(default = "default_namespace_prefix")]
    pub namespace_prefix: String,
    /// The Ingress class of tenants' Ingresses [default: the cluster's default].
    #[serde(default)]
    pub ingress_class: Option<String>,
    /// The port the application listens on in its container.
    #[serde(default = "default_container_port")]
    pub container_port: u16,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            image: default_image(),
            namespace_prefix: default_namespace_prefix(),
            ingress_class: None,
            container_port: default_container_port(),
        }
    }
}

fn default_image() -> String {
    "ghcr.io/tenantry/storefront:latest".into()
}

fn default_namespace_prefix() -> String {
    "tenant-".into()
}

fn default_container_port() -> u16 {
    8080
}

/// The tenant application.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// A name for people.
    pub name: String,
    /// Directory of versioned migrations, one sub-directory per engine (`sqlite/`, `postgres/`),
    /// files named `<version>_<description>.sql`.
    pub migrations: PathBuf,
    /// Directory of seed files, applied once per tenant in name order.
    pub seeds: PathBuf,
}

/// One region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The shard holding the region's shared database; the region's first shard when absent.
    #[serde(default)]
    pub shared_shard: Option<String>,
    /// The name of the region's shared database (also its SQLite file name, plus `.db`);
    /// `tenantry_shared_<region>` when absent, so regions sharing a server never collide.
    #[serde(default)]
    pub shared_database: Option<String>,
    /// The region's data plane (its base URL): when set, provisioning asks it to create and
    /// migrate each new tenant's space (`POST {data_plane}/internal/database/initialize`,
    /// signed with `TENANTRY_DATA_PLANE_SECRET`) instead of doing it itself.
    #[serde(default)]
    pub data_plane: Option<String>,
}

/// The master key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file holding the base64 master key; `TENANTRY_MASTER_KEY` takes precedence.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
}

/// One shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// Unique name; also used in file and database names.
    pub name: String,
    /// The region it serves.
    pub region: String,
    /// `sqlite` or `postgres`.
    pub engine: Engine,
    /// Admin connection URL, for PostgreSQL shards.
    #[serde(default)]
    pub url: Option<String>,
    /// Directory of tenant files, for SQLite shards.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// How many tenant databases it may hold.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// `active` or `draining` (takes no new tenants).
    #[serde(default)]
    pub state: ShardState,
}

fn default_capacity() -> u32 {
    1000
}

/// Placement beyond the plans.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    /// What a `schema` placement becomes where the region cannot host schemas.
    #[serde(default)]
    pub schema_fallback: SchemaFallback,
    /// Ordered rules; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Per-tenant overrides, by slug. A tenant with one is never advised to move.
    #[serde(default)]
    pub overrides: BTreeMap<String, Override>,
    /// Thresholds past which a tenant is advised to move to more isolation
    /// (`tenantry placement recommend`).
    #[serde(default)]
    pub growth: Vec<crate::growth::GrowthRule>,
    /// Moves started without an operator when a tenant crosses a growth threshold; off unless
    /// set.
    #[serde(default)]
    pub auto_move: Option<AutoMove>,
}

/// `[placement.auto_move]`: the reconciler moves tenants that grew, with hysteresis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoMove {
    /// How far past a threshold a tenant must be before a move starts (0.2: 20 % past), so
    /// that a tenant at a threshold is not moved on a passing peak.
    #[serde(default = "default_auto_move_margin")]
    pub margin: f64,
    /// Seconds after a tenant's last move ended (done, rolled back, failed or cancelled) during
    /// which it is not moved again, so that an operator's rollback stands.
    #[serde(default = "default_auto_move_cooldown")]
    pub cooldown_secs: u64,
    /// Seconds between looks (`tenantry serve`).
    #[serde(default = "default_auto_move_interval")]
    pub interval_secs: u64,
}

fn default_auto_move_margin() -> f64 {
    0.2
}

fn default_auto_move_cooldown() -> u64 {
    24 * 3600
}

fn default_auto_move_interval() -> u64 {
    300
}

/// Event sinks. Every event goes to each configured sink, in order, at least once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Log every event (target `tenantry::events`).
    #[serde(default = "yes")]
    pub log: bool,
    /// Publish to NATS JetStream.
    #[serde(default)]
    pub nats: Option<NatsSinkConfig>,
    /// POST to webhooks, signed.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// How often the relay looks for new events, in milliseconds.
    #[serde(default = "default_relay_interval")]
    pub relay_interval_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            log: true,
            nats: None,
            webhooks: Vec::new(),
            relay_interval_ms: default_relay_interval(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_relay_interval() -> u64 {
    500
}

/// A NATS JetStream sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream name, created when missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects are `<prefix>.<region>.<event type>`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
}

fn default_stream() -> String {
    "TENANTRY_EVENTS".into()
}

fn default_subject_prefix() -> String {
    "tenantry.events".into()
}

/// A webhook sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A name, unique among webhooks (its delivery cursor is kept under it).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The environment variable holding the signing secret (kept out of this file).
    pub secret_env: String,
}

/// Per-tenant infrastructure: Terraform (or OpenTofu) modules, one per tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfrastructureConfig {
    /// The Terraform or OpenTofu binary.
    #[serde(default = "default_terraform")]
    pub terraform: String,
    /// A directory holding one module directory per tier (`<modules>/<tier>/`), used for the
    /// tiers named in requests; `default/` serves the others.
    pub modules: PathBuf,
    /// Where tenants' workspaces (`<work>/<tenant id>/`), states (`<work>/tenants/<tenant
    /// id>.tfstate`) and the plugin cache live.
    pub work: PathBuf,
    /// How many Terraform processes may run at once.
    #[serde(default = "default_terraform_parallelism")]
    pub parallelism: usize,
    /// Where Terraform keeps tenants' states: absent, the local backend under `work`.
    #[serde(default)]
    pub backend: Option<TerraformBackend>,
    /// How often `tenantry serve` looks for drift (a plan per tenant with active
    /// infrastructure), in seconds.
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval_secs: u64,
    /// Whether the reconciler also repairs the infrastructure of suspended tenants (by default
    /// it leaves them as they are).
    #[serde(default)]
    pub reconcile_suspended: bool,
}

/// A Terraform backend for tenants' states, e.g. `{ type = "s3", bucket = "…", region = "…" }`.
/// Tenantry adds each tenant's state key (`tenants/<tenant id>.tfstate`) as `key` (`prefix` for
/// `gcs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerraformBackend {
    /// The backend type: `s3`, `azurerm`, `gcs`, `consul`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The backend's own settings (bucket, container, credentials' environment, …).
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

fn default_reconcile_interval() -> u64 {
    300
}

fn default_terraform() -> String {
    "terraform".into()
}

fn default_terraform_parallelism() -> usize {
    2
}

/// The REST API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serve Prometheus metrics at `/metrics` (without a token).
    #[serde(default = "yes")]
    pub metrics: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            metrics: true,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// One thing wrong with a configuration: the key and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No file at any of the places looked at.
    #[error(
        "no configuration found at {0}; run `tenantry init` to write one, or pass --config PATH"
    )]
    NotFound(String),
    /// The file is not valid TOML or does not fit the expected shape.
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: Box<figment::Error>,
    },
    /// The file parsed but its values do not hold together.
    #[error("{path} is invalid:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

impl Config {
    /// Finds the configuration file: `explicit`, then `$TENANTRY_CONFIG`, then `./tenantry.toml`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        let candidate = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("TENANTRY_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("tenantry.toml"));
        if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(ConfigError::NotFound(candidate.display().to_string()))
        }
    }

    /// Loads, resolves relative paths, and validates the file at `path`, with environment
    /// overrides applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let figment = Figment::new().merge(Toml::file_exact(path)).merge(
            Env::prefixed("TENANTRY_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Parse {
            path: display.clone(),
            source: Box::new(e),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.base_dir = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        config.source = std::path::absolute(path).ok();
        config.resolve_paths();
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: display,
                problems,
            })
        }
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.storage.root);
        abs(&mut self.compute.directory);
        if let Some(program) = self.compute.program.as_mut()
            && program.components().count() > 1
        {
            abs(program);
        }
        abs(&mut self.application.migrations);
        abs(&mut self.application.seeds);
        if let Some(infra) = self.infrastructure.as_mut() {
            abs(&mut infra.modules);
            abs(&mut infra.work);
        }
        if let Some(key) = self.secrets.master_key_file.as_mut() {
            abs(key);
        }
        for shard in &mut self.shards {
            if let Some(dir) = shard.directory.as_mut() {
                abs(dir);
            }
        }
        if let Some(rest) = self.catalog.url.strip_prefix("sqlite://") {
            let p = Path::new(rest.split('?').next().unwrap_or(rest));
            if p.is_relative() && rest != ":memory:" {
                self.catalog.url = format!("sqlite://{}", base.join(rest).display());
            }
        }
    }

    /// Everything that does not hold together, each with its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |key: String, problem: String| out.push(Problem { key, problem });
        let regions = || self.regions.keys().cloned().collect::<Vec<_>>().join(", ");

        if let Some(infra) = &self.infrastructure
            && find_program(&infra.terraform).is_none()
        {
            problem(
                "infrastructure.terraform".into(),
                format!(
                    "{:?} is neither a file nor on PATH: install Terraform or OpenTofu (or give its path here), or remove the [infrastructure] section",
                    infra.terraform
                ),
            );
        }
        if self.storage.backend == StorageBackend::S3 && self.storage.s3.is_none() {
            problem(
                "storage.s3".into(),
                "backend = \"s3\" needs a [storage.s3] section with at least bucket = \"…\"".into(),
            );
        }
        if !(self.catalog.url.starts_with("sqlite://") || self.catalog.url.starts_with("postgres"))
        {
            problem(
                "catalog.url".into(),
                format!(
                    "{:?} is neither sqlite://PATH nor postgres://…",
                    self.catalog.url
                ),
            );
        }
        for (key, dir) in [
            ("application.migrations", &self.application.migrations),
            ("application.seeds", &self.application.seeds),
        ] {
            if !dir.is_dir() {
                problem(
                    key.into(),
                    format!("directory {} does not exist", dir.display()),
                );
            }
        }
        if self.regions.is_empty() {
            problem(
                "regions".into(),
                "no region is declared; add one, e.g. [regions.eu-west]".into(),
            );
        }
        for name in self.regions.keys() {
            if Slug::parse(name).is_err() {
                problem(
                    format!("regions.{name}"),
                    "a region name is lower-case letters, digits and '-'".into(),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.shards.iter().enumerate() {
            let key = format!("shards[{i}]");
            if let Err(e) = Slug::parse(&s.name) {
                problem(
                    format!("{key}.name"),
                    e.to_string().replace("slug", "shard name"),
                );
            }
            if !seen.insert(&s.name) {
                problem(
                    format!("{key}.name"),
                    format!("shard {:?} is declared twice", s.name),
                );
            }
            if !self.regions.contains_key(&s.region) {
                problem(
                    format!("{key}.region"),
                    format!(
                        "unknown region {:?}; declared regions: {}",
                        s.region,
                        regions()
                    ),
                );
            }
            match s.engine {
                Engine::Sqlite if s.directory.is_none() => problem(
                    format!("{key}.directory"),
                    "a sqlite shard needs a directory for its files".into(),
                ),
                Engine::Postgres if s.url.is_none() => problem(
                    format!("{key}.url"),
                    "a postgres shard needs the admin connection url".into(),
                ),
                _ => {}
            }
            if s.capacity == 0 {
                problem(
                    format!("{key}.capacity"),
                    "capacity must be at least 1".into(),
                );
            }
        }
        for (name, region) in &self.regions {
            let own: Vec<&ShardConfig> = self.shards.iter().filter(|s| &s.region == name).collect();
            if own.is_empty() {
                problem(
                    format!("regions.{name}"),
                    "the region has no shard; add a [[shards]] entry with this region".into(),
                );
            }
            if let Some(db) = &region.shared_database
                && let Err(e) = crate::ident::validate(db)
            {
                problem(format!("regions.{name}.shared_database"), e.to_string());
            }
            if let Some(url) = &region.data_plane
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problem(
                    format!("regions.{name}.data_plane"),
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
            if let Some(shared) = &region.shared_shard
                && !own.iter().any(|s| &s.name == shared)
            {
                problem(
                    format!("regions.{name}.shared_shard"),
                    format!("{shared:?} is not a shard of this region"),
                );
            }
        }
        if self.plans.is_empty() {
            problem(
                "plans".into(),
                "no plan is declared; add one, e.g. [plans.standard]".into(),
            );
        }
        for (i, rule) in self.placement.rules.iter().enumerate() {
            let key = format!("placement.rules[{i}]");
            if rule.name.trim().is_empty() {
                problem(format!("{key}.name"), "a rule needs a name".into());
            }
            for plan in &rule.when.plans {
                if !self.plans.contains_key(plan) {
                    problem(
                        format!("{key}.when.plans"),
                        format!("unknown plan {plan:?}"),
                    );
                }
            }
            for region in &rule.when.regions {
                if !self.regions.contains_key(region) {
                    problem(
                        format!("{key}.when.regions"),
                        format!("unknown region {region:?}"),
                    );
                }
            }
            if rule.isolation.is_none() && rule.compute.is_none() {
                problem(
                    key.clone(),
                    "the rule sets neither isolation nor compute".into(),
                );
            }
        }
        for (i, rule) in self.placement.growth.iter().enumerate() {
            let key = format!("placement.growth[{i}]");
            if rule.to == crate::Isolation::Shared {
                problem(
                    format!("{key}.to"),
                    "a tenant grows into schema or database isolation, not shared".into(),
                );
            }
            if rule.when.is_empty() {
                problem(
                    format!("{key}.when"),
                    "give at least one of rows, table_rows, size_mb, avg_query_ms".into(),
                );
            }
        }
        if let Some(auto) = &self.placement.auto_move
            && !(0.0..=10.0).contains(&auto.margin)
        {
            problem(
                "placement.auto_move.margin".into(),
                format!(
                    "{} is not a margin: give a fraction from 0 to 10 (0.2: 20 % past a threshold)",
                    auto.margin
                ),
            );
        }
        for (slug, o) in &self.placement.overrides {
            let key = format!("placement.overrides.{slug}");
            if let Err(e) = Slug::parse(slug) {
                problem(key.clone(), e.to_string());
            }
            if let Some(shard) = &o.shard
                && !self.shards.iter().any(|s| &s.name == shard)
            {
                problem(format!("{key}.shard"), format!("unknown shard {shard:?}"));
            }
        }
        out
    }

    /// The plan called `name`.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// The shard called `name`.
    pub fn shard(&self, name: &str) -> Option<&ShardConfig> {
        self.shards.iter().find(|s| s.name == name)
    }

    /// The name of the shard holding `region`'s shared database.
    pub fn shared_shard(&self, region: &str) -> Option<&ShardConfig> {
        let declared = self
            .regions
            .get(region)?
            .shared_shard
            .as_deref()
            .and_then(|n| self.shard(n));
        declared.or_else(|| self.shards.iter().find(|s| s.region == region))
    }

    /// The name of `region`'s shared database.
    pub fn shared_database(&self, region: &str) -> String {
        self.regions
            .get(region)
            .and_then(|r| r.shared_database.clone())
            .unwrap_or_else(|| format!("tenantry_shared_{}", region.replace('-', "_")))
    }

    /// The placement policy the configuration declares.
    pub fn policy(&self) -> crate::placement::Policy<'_> {
        crate::placement::Policy {
            plans: &self.plans,
            rules: &self.placement.rules,
            overrides: &self.placement.overrides,
            schema_fallback: self.placement.schema_fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the default configuration and an (empty) application into a temporary directory.
    fn make_test_dir(toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/migrations")).unwrap();
        std::fs::create_dir_all(dir.path().join("app/seeds")).unwrap();
        std::fs::write(dir.path().join("tenantry.toml"), toml).unwrap();
        dir
    }

    #[test]
    fn the_default_configuration_loads_and_resolves_paths() {
        let dir = make_test_dir(DEFAULT_TOML);
        let config = Config::load(&dir.path().join("tenantry.toml")).unwrap();
        assert_eq!(
            config.regions.keys().collect::<Vec<_>>(),
            ["eu-west", "us-east"]
        );
        assert!(config.storage.root.is_absolute());
        assert!(config.catalog.url.starts_with("sqlite:///"));
        for plan in ["free", "standard", "business", "premium", "enterprise"] {
            assert!(config.plan(plan).is_some(), "{plan}");
        }
        assert_eq!(config.shared_shard("us-east").unwrap().region, "us-east");
    }

    #[test]
    fn the_postgres_default_loads_and_points_everything_at_the_server() {
        let dir = make_test_dir(&default_toml_postgres(
            "postgres://postgres@127.0.0.1:5432/postgres",
        ));
        let config = Config::load(&dir.path().join("tenantry.toml")).unwrap();
        assert_eq!(
            config.catalog.url,
            "postgres://postgres@127.0.0.1:5432/tenantry_catalog"
        );
        assert!(config.shards.iter().all(|s| s.engine == Engine::Postgres));
        assert_eq!(config.shards.len(), 2);
        assert_eq!(config.shared_database("eu-west"), "tenantry_shared_eu_west");
    }

    #[test]
    fn auto_moves_are_off_by_default_and_a_bad_margin_is_named() {
        let dir = make_test_dir(DEFAULT_TOML);
        let config = Config::load(&dir.path().join("tenantry.toml")).unwrap();
        assert_eq!(config.placement.auto_move, None);
        let on = format!("{DEFAULT_TOML}\n[placement.auto_move]\nmargin = 0.5\n");
        let dir = make_test_dir(&on);
        let auto = Config::load(&dir.path().join("tenantry.toml"))
            .unwrap()
            .placement
            .auto_move
            .unwrap();
        assert_eq!(
            (auto.margin, auto.cooldown_secs, auto.interval_secs),
            (0.5, 86_400, 300)
        );
        let bad = format!("{DEFAULT_TOML}\n[placement.auto_move]\nmargin = -1.0\n");
        let dir = make_test_dir(&bad);
        let err = Config::load(&dir.path().join("tenantry.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("placement.auto_move.margin"), "{err}");
    }

    #[test]
    fn problems_name_the_key() {
        let broken = DEFAULT_TOML.replace("region = \"us-east\"", "region = \"us-est\"");
        let dir = make_test_dir(&broken);
        let err = Config::load(&dir.path().join("tenantry.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("shards[1].region: unknown region \"us-est\""),
            "{msg}"
        );
        assert!(
            msg.contains("regions.us-east: the region has no shard"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = make_test_dir(&format!("{DEFAULT_TOML}\n[telemetry]\nenabled = true\n"));
        let msg = Config::load(&dir.path().join("tenantry.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("telemetry"), "{msg}");
    }

    #[test]
    fn infrastructure_is_off_by_default_and_init_turns_it_on() {
        let dir = make_test_dir(DEFAULT_TOML);
        let config = Config::load(&dir.path().join("tenantry.toml")).unwrap();
        assert!(config.infrastructure.is_none());
        let on = enable_infrastructure(DEFAULT_TOML);
        assert!(on.contains("\n[infrastructure]\nterraform = \"terraform\"\n"));
        assert!(on.contains("# turns this on when it finds Terraform"));
    }

    #[test]
    fn a_terraform_binary_that_is_not_there_is_a_configuration_error() {
        let text = enable_infrastructure(DEFAULT_TOML).replace(
            "terraform = \"terraform\"",
            "terraform = \"/nonexistent/terraform\"",
        );
        let dir = make_test_dir(&text);
        let err = Config::load(&dir.path().join("tenantry.toml")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("infrastructure.terraform"), "{message}");
        assert!(
            message.contains("install Terraform or OpenTofu"),
            "{message}"
        );
    }

    #[test]
    fn a_backend_for_tenant_states_is_its_type_and_settings() {
        let text = enable_infrastructure(DEFAULT_TOML)
            .replace("terraform = \"terraform\"", "terraform = \"/bin/sh\"")
            + "\n[infrastructure.backend]\ntype = \"azurerm\"\ncontainer_name = \"states\"\n";
        let dir = make_test_dir(&text);
        let config = Config::load(&dir.path().join("tenantry.toml")).unwrap();
        let backend = config.infrastructure.unwrap().backend.unwrap();
        assert_eq!(backend.kind, "azurerm");
        assert_eq!(backend.settings["container_name"], "states");
    }
}
