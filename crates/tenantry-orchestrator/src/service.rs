//! [`Orchestrator`]: requests operations (validated before anything is written) and runs them.

use crate::error::{OrchestratorError, Result};
use crate::failpoints::Failpoints;
use crate::request::{ProvisionPlan, ProvisionRequest, validate_email};
use crate::steps::steps_of;
use std::sync::Arc;
use std::time::Duration;
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::{Cause, NewOperation, NewTenant, Operation, OperationKind, Tenant};
use tenantry_core::config::Config;
use tenantry_core::domain::TenantDomains;
use tenantry_core::placement;
use tenantry_core::secrets::MasterKey;
use tenantry_core::shard::resolve_shard;
use tenantry_core::{Slug, TenantId, TenantState};
use tenantry_engines::driver::ShardTarget;
use tenantry_engines::{Application, Spaces};
use tenantry_infra::TenantStorage;
use uuid::Uuid;

/// Runs Tenantry's operations against one catalog.
pub struct Orchestrator {
    pub(crate) config: Arc<Config>,
    pub(crate) catalog: Arc<dyn CatalogStore>,
    pub(crate) spaces: Spaces,
    pub(crate) storage: TenantStorage,
    pub(crate) app: Application,
    pub(crate) failpoints: Failpoints,
    /// Who is asking, recorded in the audit trail.
    pub(crate) actor: String,
    /// This process's identity as a lease owner.
    pub(crate) worker: String,
    /// How long a lease lasts without renewal.
    pub(crate) lease: Duration,
    /// Seals tenant credentials; absent until configured (only needed once one is stored).
    pub(crate) master_key: Option<MasterKey>,
    /// The Terraform driver, started on first use (see [`Orchestrator::terraform`]).
    pub(crate) terraform: tokio::sync::OnceCell<tenantry_infra::terraform::Terraform>,
    /// The client of regions' data planes, made on first use.
    pub(crate) data_plane: std::sync::OnceLock<tenantry_dataplane::DataPlaneClient>,
    /// The runtime of dedicated tenants' compute, made on first use (see
    /// [`Orchestrator::compute_runtime`]).
    pub(crate) compute: tokio::sync::OnceCell<std::sync::Arc<dyn tenantry_compute::ComputeRuntime>>,
}

/// Reads the master key from `TENANTRY_MASTER_KEY`, else from `secrets.master_key_file`.
pub fn load_master_key(config: &Config) -> Result<Option<MasterKey>> {
    let bad = |source: &str, e: tenantry_core::secrets::SecretError| {
        OrchestratorError::InvalidRequest(format!("{source}: {e}"))
    };
    if let Ok(text) = std::env::var("TENANTRY_MASTER_KEY") {
        return MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| bad("TENANTRY_MASTER_KEY", e));
    }
    let Some(path) = &config.secrets.master_key_file else {
        return Ok(None);
    };
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| bad(&path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OrchestratorError::InvalidRequest(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))),
    }
}

impl Orchestrator {
    /// Opens the orchestrator over `catalog`, registering the configuration's shards.
    pub async fn new(
        config: Arc<Config>,
        catalog: Arc<dyn CatalogStore>,
        actor: impl Into<String>,
    ) -> Result<Self> {
        catalog.sync_shards(&config.shards).await?;
        let app = Application::new(&config.application.migrations, &config.application.seeds);
        let shards = catalog.shards().await?;
        let spaces = Spaces::new(
            &app,
            shards.into_iter().map(|s| ShardTarget {
                shared_database: config.shared_database(&s.region),
                name: s.name,
                engine: s.engine,
                directory: s.directory.map(Into::into),
                url: s.url,
            }),
        )?;
        let storage = TenantStorage::from_config(&config.storage)?;
        let failpoints = Failpoints::from_env().map_err(OrchestratorError::InvalidRequest)?;
        let master_key = load_master_key(&config)?;
        Ok(Self {
            config,
            catalog,
            spaces,
            storage,
            app,
            failpoints,
            actor: actor.into(),
            worker: crate::worker::worker_id(),
            lease: Duration::from_secs(30),
            master_key,
            terraform: tokio::sync::OnceCell::new(),
            data_plane: std::sync::OnceLock::new(),
            compute: tokio::sync::OnceCell::new(),
        })
    }

    /// Sets how long a lease lasts (tests shorten it).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn catalog(&self) -> &Arc<dyn CatalogStore> {
        &self.catalog
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn storage(&self) -> &TenantStorage {
        &self.storage
    }

    pub fn spaces(&self) -> &Spaces {
        &self.spaces
    }

    /// The error for a region the configuration does not have, naming those it has.
    pub(crate) fn unknown_region(&self, region: &str) -> OrchestratorError {
        OrchestratorError::InvalidRequest(format!(
            "unknown region {region:?}; known regions: {}",
            self.config
                .regions
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// The master key, or an error that says how to provide one.
    pub(crate) fn master_key(&self) -> Result<&MasterKey> {
        self.master_key.as_ref().ok_or_else(|| {
            OrchestratorError::InvalidRequest(
                "no master key to seal tenant credentials with: set TENANTRY_MASTER_KEY or secrets.master_key_file (`tenantry init` writes one)".into(),
            )
        })
    }

    pub(crate) fn cause(&self, trigger: impl Into<String>) -> Cause {
        Cause {
            trigger: trigger.into(),
            actor: self.actor.clone(),
            details: serde_json::Value::Null,
        }
    }

    /// The cause of a change made by `op`: on behalf of whoever requested the operation.
    pub(crate) fn cause_of(&self, op: &Operation, trigger: impl Into<String>) -> Cause {
        Cause {
            actor: op.params["requested_by"]
                .as_str()
                .unwrap_or(&self.actor)
                .to_owned(),
            ..self.cause(trigger)
        }
    }

    /// Validates host names for `tenant` (a new tenant when `None`): well formed, and none
    /// another live tenant's.
    async fn free_domains(
        &self,
        tenant: Option<TenantId>,
        primary: Option<&str>,
        aliases: &[String],
    ) -> Result<TenantDomains> {
        let domains = TenantDomains::parse(primary, aliases)
            .map_err(|e| OrchestratorError::InvalidRequest(e.to_string()))?;
        for domain in domains.all() {
            match self.catalog.tenant_by_domain(domain).await {
                Ok(owner) if Some(owner.id) != tenant => {
                    return Err(tenantry_catalog::CatalogError::DomainTaken {
                        domain: domain.to_string(),
                        slug: owner.slug,
                    }
                    .into());
                }
                Ok(_) | Err(tenantry_catalog::CatalogError::DomainNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(domains)
    }

    /// Replaces a tenant's host names (none: `primary` absent and no aliases).
    pub async fn set_domains(
        &self,
        slug: &str,
        primary: Option<&str>,
        aliases: &[String],
    ) -> Result<TenantDomains> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        if tenant.state == TenantState::Deleted {
            return Err(OrchestratorError::InvalidRequest(format!(
                "tenant {slug} is deleted; its domains were released"
            )));
        }
        let domains = self.free_domains(Some(tenant.id), primary, aliases).await?;
        self.catalog.set_domains(tenant.id, &domains).await?;
        Ok(domains)
    }

    /// Validates a provisioning request and decides its placement, writing nothing.
    pub async fn plan_provision(&self, req: &ProvisionRequest) -> Result<ProvisionPlan> {
        let slug = Slug::parse(&req.slug)?;
        if !self.config.regions.contains_key(&req.region) {
            return Err(self.unknown_region(&req.region));
        }
        let characteristics = req.characteristics()?;
        let admin_email = validate_email(
            &req.admin_email
                .clone()
                .unwrap_or_else(|| format!("admin@{slug}.example")),
        )?;
        let domains = self
            .free_domains(None, req.domain.as_deref(), &req.aliases)
            .await?;
        let shared = self.config.shared_shard(&req.region).ok_or_else(|| {
            OrchestratorError::InvalidRequest(format!("region {:?} has no shard", req.region))
        })?;
        let decision = placement::decide(
            self.config.policy(),
            slug.as_str(),
            &characteristics,
            req.isolation,
            shared.engine.supports_schemas(),
        )?;
        // Two independent reads, at once.
        let (existing, usage) = tokio::join!(
            self.catalog.tenant_by_slug(slug.as_str()),
            self.catalog.shard_usage()
        );
        match existing {
            Ok(t) if t.state != TenantState::Deleted => {
                return Err(tenantry_catalog::CatalogError::DuplicateSlug(t.slug).into());
            }
            Ok(_) | Err(tenantry_catalog::CatalogError::TenantNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let usage = usage?;
        let shard = resolve_shard(
            &req.region,
            decision.isolation,
            &shared.name,
            decision.requested_shard.as_deref(),
            &usage,
        )?;
        let tenant_id = TenantId::generate();
        let space = self
            .spaces
            .driver(&shard.name)?
            .locate(tenant_id, decision.isolation)?;
        Ok(ProvisionPlan {
            tenant_id,
            slug,
            plan: req.plan.clone(),
            region: req.region.clone(),
            characteristics,
            placement: decision,
            shard: shard.name.clone(),
            space,
            admin_email,
            domains,
            steps: steps_of(OperationKind::Provision).to_vec(),
        })
    }

    /// Records a tenant and its provisioning operation (to be run by [`Orchestrator::run`]).
    pub async fn request_provision(&self, req: &ProvisionRequest) -> Result<(Tenant, Operation)> {
        self.request_provision_by(req, &self.actor).await
    }

    /// [`Orchestrator::request_provision`] on behalf of `actor` (recorded in the audit trail).
    pub async fn request_provision_by(
        &self,
        req: &ProvisionRequest,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let plan = self.plan_provision(req).await?;
        let cause = Cause {
            details: serde_json::json!({ "placement": plan.placement, "shard": plan.shard }),
            actor: actor.to_owned(),
            ..self.cause("tenant create")
        };
        let new = NewTenant {
            id: plan.tenant_id,
            slug: plan.slug.to_string(),
            characteristics: plan.characteristics,
            placement: plan.placement,
            shard: plan.shard,
            admin_email: plan.admin_email,
            domains: plan.domains,
        };
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind: OperationKind::Provision,
            steps: steps_of(OperationKind::Provision).to_vec(),
            params: serde_json::json!({ "requested_by": actor }),
        };
        Ok(self.catalog.create_tenant(new, cause, op).await?)
    }

    /// Queues a suspend, resume or delete, refusing at once what the lifecycle forbids.
    pub async fn request(&self, slug: &str, kind: OperationKind) -> Result<(Tenant, Operation)> {
        self.request_by(slug, kind, &self.actor).await
    }

    /// [`Orchestrator::request`] on behalf of `actor`.
    pub async fn request_by(
        &self,
        slug: &str,
        kind: OperationKind,
        actor: &str,
    ) -> Result<(Tenant, Operation)> {
        let tenant = self.catalog.tenant_by_slug(slug).await?;
        let target = match kind {
            OperationKind::Suspend => TenantState::Suspended,
            OperationKind::Resume => TenantState::Active,
            OperationKind::Delete => TenantState::Deleting,
            OperationKind::Provision => {
                return Err(OrchestratorError::InvalidRequest(
                    "provisioning is requested with request_provision".into(),
                ));
            }
            OperationKind::InfraProvision
            | OperationKind::InfraUpdate
            | OperationKind::InfraDeprovision => {
                return Err(OrchestratorError::InvalidRequest(
                    "infrastructure operations are requested with request_infrastructure".into(),
                ));
            }
            OperationKind::Move | OperationKind::MoveComplete | OperationKind::MoveRollback => {
                return Err(OrchestratorError::InvalidRequest(
                    "moves are requested with request_move, request_move_complete and request_move_rollback".into(),
                ));
            }
            OperationKind::Update => {
                return Err(OrchestratorError::InvalidRequest(
                    "updates are requested with request_plan_change".into(),
                ));
            }
        };
        tenant.state.transition(target)?;
        let op = NewOperation {
            id: Uuid::now_v7(),
            kind,
            steps: steps_of(kind).to_vec(),
            params: serde_json::json!({ "requested_by": actor }),
        };
        let op = self.catalog.create_operation(tenant.id, op).await?;
        Ok((tenant, op))
    }
}
