//! A tenant's own compute and its licence: what its runtime is told to run, and the signed
//! statement of what its plan entitles it to.
//!
//! Only tenants whose placement says `compute = "dedicated"` get compute of their own; every
//! tenant gets a licence, which is sealed in the catalog like its database credentials and
//! handed to its compute as `TENANTRY_LICENCE` (with `TENANTRY_LICENCE_PUBLIC_KEY` to check it
//! offline). The signing key is derived from the master key, so nothing more needs keeping safe.

use crate::error::{OrchestratorError, Result};
use crate::service::Orchestrator;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tenantry_catalog::model::Tenant;
use tenantry_compute::process::{ProcessOptions, ProcessRuntime};
use tenantry_compute::{ComputeRuntime, ComputeSpec, ComputeStatus, Resources};
use tenantry_core::config::ComputeRuntimeKind;
use tenantry_core::licence::{Licence, LicenceError, LicenceKey, Limits};
use tenantry_core::{Compute, Isolation};

/// The catalog secret holding a tenant's licence, sealed for the tenant.
pub const LICENCE_SECRET: &str = "licence";

/// A tenant's licence as found in the catalog, checked.
#[derive(Debug)]
pub struct LicenceCheck {
    /// The licence in its travelling form (not secret: it proves, it does not open).
    pub token: String,
    /// Its contents when it verifies, else why not.
    pub verified: std::result::Result<Licence, LicenceError>,
    /// Where it disagrees with the tenant's current plan (empty when it agrees).
    pub stale: Vec<String>,
}

impl Orchestrator {
    /// The configured compute runtime, made on first use.
    pub async fn compute_runtime(&self) -> Result<&Arc<dyn ComputeRuntime>> {
        self.compute
            .get_or_try_init(|| async {
                let settings = &self.config.compute;
                let runtime: Arc<dyn ComputeRuntime> = match settings.runtime {
                    ComputeRuntimeKind::Process => {
                        let program = match &settings.program {
                            Some(p) => p.clone(),
                            None => std::env::current_exe().map_err(|e| {
                                OrchestratorError::InvalidRequest(format!(
                                    "cannot find this program to run tenants' compute with ({e}): set compute.program"
                                ))
                            })?,
                        };
                        let config = self.config.source.clone().ok_or_else(|| {
                            OrchestratorError::InvalidRequest(
                                "the process runtime hands tenants' processes the configuration file, and this configuration was not loaded from one".into(),
                            )
                        })?;
                        Arc::new(ProcessRuntime::new(ProcessOptions {
                            dir: settings.directory.clone(),
                            program,
                            args: vec![
                                "--config".into(),
                                config.into_os_string(),
                                "storefront".into(),
                            ],
                            host: settings.host.clone(),
                            health_timeout: Duration::from_secs(settings.health_timeout_secs),
                        }))
                    }
                    ComputeRuntimeKind::Kubernetes => Arc::new(
                        tenantry_compute::kubernetes::KubernetesRuntime::connect(
                            crate::compute::kubernetes_options(&self.config.compute),
                        )
                        .await?,
                    ),
                };
                Ok::<_, OrchestratorError>(runtime)
            })
            .await
    }

    /// What the tenant's compute runs with: its environment, secrets, caps and host names.
    pub async fn compute_spec(&self, t: &Tenant) -> Result<ComputeSpec> {
        let plan = self.config.plan(&t.plan).ok_or_else(|| {
            OrchestratorError::InvalidRequest(format!(
                "plan {:?} is no longer in the configuration",
                t.plan
            ))
        })?;
        let mut env = BTreeMap::from([
            ("TENANT_ID".to_owned(), t.id.to_string()),
            ("TENANT_SLUG".to_owned(), t.slug.clone()),
            ("TENANT_REGION".to_owned(), t.region.clone()),
            ("TENANT_PLAN".to_owned(), t.plan.clone()),
            (
                "STORAGE_PREFIX".to_owned(),
                self.storage.url_of(&t.region, t.id),
            ),
            ("REDIS_PREFIX".to_owned(), t.id.key_prefix()),
        ]);
        let mut secret_env = BTreeMap::new();
        if let Some(check) = self.licence(t).await? {
            env.insert(
                "TENANTRY_LICENCE_PUBLIC_KEY".to_owned(),
                self.licence_key()?.public().to_base64(),
            );
            secret_env.insert("TENANTRY_LICENCE".to_owned(), check.token.into());
        }
        if let Some(url) = self.database_url(t).await? {
            secret_env.insert("DATABASE_URL".to_owned(), url);
        }
        let domains = self.catalog.domains(t.id).await?;
        Ok(ComputeSpec {
            tenant: t.id,
            slug: t.slug.clone(),
            region: t.region.clone(),
            plan: t.plan.clone(),
            env,
            secret_env,
            resources: Resources {
                memory: plan.memory.clone(),
                cpu: plan.cpu.clone(),
            },
            domains: domains
                .primary
                .iter()
                .chain(&domains.aliases)
                .map(|d| d.as_str().to_owned())
                .collect(),
        })
    }

    /// The URL of the tenant's own database, with its credentials; `None` unless it has a
    /// database of its own (shared and schema tenants reach their data through the router).
    async fn database_url(&self, t: &Tenant) -> Result<Option<SecretString>> {
        let Some(space) = t.space.as_ref().filter(|s| s.kind == Isolation::Database) else {
            return Ok(None);
        };
        if let Some(path) = &space.path {
            return Ok(Some(format!("sqlite://{}", path.display()).into()));
        }
        let (Some(database), Some(credentials)) =
            (space.database.as_deref(), self.credentials(t.id).await?)
        else {
            return Ok(None);
        };
        let shard = self
            .catalog
            .shards()
            .await?
            .into_iter()
            .find(|s| s.name == space.shard)
            .and_then(|s| s.url)
            .ok_or_else(|| {
                OrchestratorError::InvalidRequest(format!(
                    "shard {} has no URL in the catalog",
                    space.shard
                ))
            })?;
        let mut url = url::Url::parse(&shard).map_err(|e| {
            OrchestratorError::InvalidRequest(format!("shard {}'s URL: {e}", space.shard))
        })?;
        let bad = |_| {
            OrchestratorError::InvalidRequest(format!(
                "shard {}'s URL cannot carry credentials",
                space.shard
            ))
        };
        url.set_username(&credentials.role).map_err(bad)?;
        url.set_password(Some(credentials.password.expose_secret()))
            .map_err(bad)?;
        url.set_path(database);
        Ok(Some(url.to_string().into()))
    }

    /// Starts the tenant's compute (when it has its own) and waits until it is healthy.
    pub async fn ensure_compute(&self, t: &Tenant) -> Result<Option<ComputeStatus>> {
        if t.compute != Compute::Dedicated {
            return Ok(None);
        }
        let spec = self.compute_spec(t).await?;
        let status = self.compute_runtime().await?.ensure_running(&spec).await?;
        tracing::info!(tenant = %t.slug, endpoint = ?status.endpoint, "the tenant's compute is running");
        Ok(Some(status))
    }

    /// Stops the tenant's compute, keeping its set-up.
    pub async fn stop_compute(&self, t: &Tenant) -> Result<()> {
        if t.compute == Compute::Dedicated {
            self.compute_runtime().await?.stop(t.id).await?;
        }
        Ok(())
    }

    /// Removes whatever the runtime has for the tenant (whatever its placement says now: a
    /// tenant that left dedicated compute leaves nothing behind).
    pub async fn remove_compute(&self, t: &Tenant) -> Result<()> {
        let runtime = self.compute_runtime().await?;
        if t.compute == Compute::Dedicated || runtime.status(t.id).await?.state.exists() {
            runtime.remove(t.id).await?;
        }
        Ok(())
    }

    /// The tenant's compute as observed; `None` for a tenant on shared compute.
    pub async fn compute_status(&self, t: &Tenant) -> Result<Option<ComputeStatus>> {
        if t.compute != Compute::Dedicated {
            return Ok(None);
        }
        Ok(Some(self.compute_runtime().await?.status(t.id).await?))
    }

    /// The Kubernetes objects the tenant's compute is (or would be) applied as, in apply order,
    /// as YAML — with every secret value replaced by `<redacted>`: for people to read.
    pub async fn manifests(&self, t: &Tenant) -> Result<String> {
        use tenantry_compute::kubernetes::manifests::{render_redacted, to_yaml};
        let spec = self.compute_spec(t).await?;
        Ok(to_yaml(&render_redacted(
            &spec,
            &kubernetes_options(&self.config.compute),
        )))
    }

    /// The key licences are signed with.
    pub fn licence_key(&self) -> Result<LicenceKey> {
        Ok(LicenceKey::derived_from(self.master_key()?))
    }

    /// What the tenant's plan entitles it to, now.
    fn licence_for(&self, t: &Tenant) -> Result<Licence> {
        let plan = self.config.plan(&t.plan).ok_or_else(|| {
            OrchestratorError::InvalidRequest(format!(
                "plan {:?} is no longer in the configuration",
                t.plan
            ))
        })?;
        Ok(Licence {
            tenant_id: t.id.to_string(),
            slug: t.slug.clone(),
            plan: t.plan.clone(),
            limits: Limits {
                isolation: t.isolation.to_string(),
                compute: t.compute.to_string(),
                storage_quota_mb: plan.storage_quota_mb,
            },
            issued_at: Utc::now(),
            expires_at: None,
        })
    }

    /// Issues the tenant a licence for its current plan, sealed in the catalog (replacing any
    /// earlier one).
    pub async fn issue_licence(&self, t: &Tenant) -> Result<()> {
        let token = self.licence_key()?.issue(&self.licence_for(t)?);
        let sealed = self.master_key()?.seal(&licence_owner(t), token.as_bytes());
        self.catalog
            .put_secret(t.id, LICENCE_SECRET, &sealed)
            .await?;
        Ok(())
    }

    /// The tenant's licence, verified with the public key and compared with its plan; `None`
    /// when none was issued.
    pub async fn licence(&self, t: &Tenant) -> Result<Option<LicenceCheck>> {
        let Some(sealed) = self.catalog.secret(t.id, LICENCE_SECRET).await? else {
            return Ok(None);
        };
        let plain = self
            .master_key()?
            .open(&licence_owner(t), &sealed)
            .map_err(|e| {
                OrchestratorError::InvalidRequest(format!("tenant {}'s licence: {e}", t.slug))
            })?;
        let token = String::from_utf8(plain).map_err(|_| {
            OrchestratorError::InvalidRequest(format!("tenant {}'s licence is not text", t.slug))
        })?;
        let verified = self.licence_key()?.public().verify(&token, Utc::now());
        let stale = match (&verified, self.licence_for(t)) {
            (Ok(held), Ok(due)) => stale_terms(held, &due),
            _ => Vec::new(),
        };
        Ok(Some(LicenceCheck {
            token,
            verified,
            stale,
        }))
    }
}

/// The sealing context of a tenant's licence: its id and what the secret is.
fn licence_owner(t: &Tenant) -> String {
    format!("{}/{LICENCE_SECRET}", t.id)
}

/// The terms of `held` that differ from what is `due`.
fn stale_terms(held: &Licence, due: &Licence) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, held: &dyn std::fmt::Display, due: &dyn std::fmt::Display| {
        if held.to_string() != due.to_string() {
            out.push(format!("{what} is {held}, the tenant's is {due}"));
        }
    };
    differ("plan", &held.plan, &due.plan);
    differ("isolation", &held.limits.isolation, &due.limits.isolation);
    differ("compute", &held.limits.compute, &due.limits.compute);
    differ(
        "storage quota (MiB)",
        &held.limits.storage_quota_mb,
        &due.limits.storage_quota_mb,
    );
    out
}

/// The Kubernetes runtime's options from the configuration.
pub(crate) fn kubernetes_options(
    settings: &tenantry_core::config::ComputeConfig,
) -> tenantry_compute::kubernetes::KubernetesOptions {
    let k = &settings.kubernetes;
    tenantry_compute::kubernetes::KubernetesOptions {
        image: k.image.clone(),
        namespace_prefix: k.namespace_prefix.clone(),
        ingress_class: k.ingress_class.clone(),
        container_port: k.container_port,
        readiness_timeout: Duration::from_secs(settings.health_timeout_secs),
        ..Default::default()
    }
}
