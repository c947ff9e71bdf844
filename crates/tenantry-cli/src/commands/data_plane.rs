//! `tenantry data-plane`: a region's data plane — the endpoint a control plane calls to have a
//! new tenant's space created and migrated here (delegated set-up, see `tenantry_dataplane`).
//! It needs no catalog: the shards it serves come from the configuration's `[[shards]]`, the
//! master key seals the credentials it answers, and `TENANTRY_DATA_PLANE_SECRET` checks that
//! each call comes from its control plane.

use crate::cli::{Cli, DataPlaneArgs};
use crate::context::load_config;
use anyhow::{Context, Result, bail};
use secrecy::SecretString;
use tenantry_core::config::Config;
use tenantry_dataplane::signature::DEFAULT_WINDOW_SECS;
use tenantry_dataplane::{DataPlane, SECRET_ENV, Verifier};
use tenantry_engines::driver::ShardTarget;
use tenantry_engines::{Application, Spaces};

pub async fn run(cli: &Cli, args: &DataPlaneArgs) -> Result<()> {
    let config = load_config(cli)?;
    let (plane, names) = build(&config, args.region.as_deref())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "tenantry data plane on http://{addr} for shards {}; Ctrl-C to stop",
        names.join(", ")
    );
    tracing::info!(%addr, shards = ?names, "data plane serving");
    axum::serve(listener, plane.router())
        .with_graceful_shutdown(super::serve::shutdown_signal())
        .await
        .context("serving HTTP")
}

/// The data plane of `region`'s shards (every shard's without one), and the shards' names.
pub(crate) fn build(config: &Config, region: Option<&str>) -> Result<(DataPlane, Vec<String>)> {
    let Ok(secret) = std::env::var(SECRET_ENV) else {
        bail!(
            "{SECRET_ENV} is not set: set it to the secret the control plane signs with (at least 32 characters, e.g. `openssl rand -hex 32`)"
        );
    };
    let verifier = Verifier::new(SecretString::from(secret), DEFAULT_WINDOW_SECS)
        .with_context(|| SECRET_ENV)?;
    let Some(master_key) = tenantry_orchestrator::service::load_master_key(config)? else {
        bail!(
            "no master key to seal tenants' credentials with: set TENANTRY_MASTER_KEY or secrets.master_key_file, the control plane's own"
        );
    };
    let shards: Vec<ShardTarget> = config
        .shards
        .iter()
        .filter(|s| region.is_none_or(|r| s.region == r))
        .map(|s| ShardTarget {
            name: s.name.clone(),
            engine: s.engine,
            directory: s.directory.clone(),
            url: s.url.clone(),
            shared_database: config.shared_database(&s.region),
        })
        .collect();
    if shards.is_empty() {
        bail!(
            "no shard to serve: the configuration has none in region {:?}",
            region.unwrap_or_default()
        );
    }
    let names = shards.iter().map(|s| s.name.clone()).collect();
    let app = Application::new(&config.application.migrations, &config.application.seeds);
    let plane = DataPlane {
        spaces: Spaces::new(&app, shards)?,
        master_key,
        verifier,
    };
    Ok((plane, names))
}
