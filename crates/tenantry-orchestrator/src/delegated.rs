//! Delegated set-up: in a region that names a data plane, a new tenant's space is created and
//! migrated by that data plane (`POST {data_plane}/internal/database/initialize`, see
//! [`tenantry_dataplane`]), not by the control plane. The data plane answers the space's
//! version and, for a database of its own, the role's credentials sealed with the master key;
//! they are stored as they came, after checking that they open with this control plane's key.

use crate::error::StepError;
use crate::service::Orchestrator;
use crate::shards::DATABASE_SECRET;
use base64::Engine as _;
use secrecy::SecretString;
use tenantry_catalog::model::{Tenant, TenantUpdate};
use tenantry_core::space::Space;
use tenantry_dataplane::{DataPlaneClient, InitializeRequest, SECRET_ENV};

impl Orchestrator {
    /// The data plane of the tenant's region, if it delegates set-up.
    pub(crate) fn data_plane_of(&self, t: &Tenant) -> Option<&str> {
        self.config
            .regions
            .get(&t.region)
            .and_then(|r| r.data_plane.as_deref())
    }

    fn data_plane_client(&self) -> Result<&DataPlaneClient, StepError> {
        if let Some(client) = self.data_plane.get() {
            return Ok(client);
        }
        let secret = std::env::var(SECRET_ENV).map_err(|_| {
            StepError::permanent(format!(
                "this region delegates database set-up to its data plane, but {SECRET_ENV} is not set: give it the secret the data plane was started with"
            ))
        })?;
        let client = DataPlaneClient::new(SecretString::from(secret))
            .map_err(|e| StepError::permanent(format!("{SECRET_ENV}: {e}")))?;
        Ok(self.data_plane.get_or_init(|| client))
    }

    /// Has the data plane at `endpoint` create and migrate `space`, and records what it answers.
    pub(crate) async fn initialize_remotely(
        &self,
        t: &Tenant,
        space: &Space,
        endpoint: &str,
    ) -> Result<(), StepError> {
        let request = InitializeRequest {
            tenant_id: t.id,
            space: space.clone(),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        };
        let answer = self
            .data_plane_client()?
            .initialize(endpoint, &request)
            .await
            .map_err(|e| StepError {
                transient: e.is_transient(),
                message: e.to_string(),
            })?;
        if let Some(sealed) = &answer.sealed_credentials {
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .map_err(|e| {
                    StepError::permanent(format!("the data plane's sealed credentials: {e}"))
                })?;
            self.master_key()?
                .open(&t.id.to_string(), &sealed)
                .map_err(|_| {
                    StepError::permanent(
                        "the data plane sealed the credentials with another master key: give it this control plane's (TENANTRY_MASTER_KEY or secrets.master_key_file)",
                    )
                })?;
            self.catalog
                .put_secret(t.id, DATABASE_SECRET, &sealed)
                .await?;
        }
        self.catalog
            .update_tenant(
                t.id,
                TenantUpdate {
                    schema_version: Some(answer.schema_version),
                    ..TenantUpdate::default()
                },
            )
            .await?;
        tracing::info!(endpoint, version = ?answer.schema_version, "the data plane initialized the tenant's space");
        Ok(())
    }
}
