//! `tenantry storefront`: the sample application served for the fleet's tenants, every request
//! routed to its tenant's data by the tenant router — the service dedicated tenants' compute
//! runs (pinned with `--tenant`), and, with `--data-plane`, the region's data plane as well, so
//! that one process both sets up a region's new tenants and serves them.

use crate::cli::{Cli, StorefrontArgs};
use crate::context::load_config;
use anyhow::{Context, Result};
use secrecy::SecretString;
use tenantry_core::licence::LicencePublicKey;
use tenantry_router::{Router, RouterOptions, TenantKey};
use tenantry_storefront::Storefront;

/// The environment variable with the password of the application role, where servers ask for one.
pub const APP_PASSWORD_ENV: &str = "TENANTRY_APP_PASSWORD";

pub async fn run(cli: &Cli, args: &StorefrontArgs) -> Result<()> {
    let config = load_config(cli)?;
    let catalog = tenantry_catalog::open(&config.catalog.url)
        .await
        .context("opening the catalog")?;
    let router = Router::new(
        catalog.clone(),
        RouterOptions {
            master_key: tenantry_orchestrator::service::load_master_key(&config)?,
            app_password: std::env::var(APP_PASSWORD_ENV).ok().map(SecretString::from),
            shared_connections: args.shared_connections,
            max_tenant_connections: args.max_tenant_connections,
            ..RouterOptions::default()
        },
    );
    let redis = match args
        .redis
        .clone()
        .or_else(|| std::env::var("REDIS_URL").ok())
    {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).with_context(|| {
                format!("--redis {url:?} is not a Redis URL (redis://HOST:PORT)")
            })?;
            Some(
                client
                    .get_connection_manager()
                    .await
                    .with_context(|| format!("connecting to Redis at {url}"))?,
            )
        }
        None => None,
    };
    let pinned = args.tenant.as_deref().map(TenantKey::parse);
    if pinned.is_some() {
        check_licence()?;
    }
    let mut app = Storefront::new(router.clone(), redis, pinned.clone()).routes();
    let mut roles = vec!["storefront".to_owned()];
    if args.data_plane {
        let (plane, shards) = super::data_plane::build(&config, args.region.as_deref())?;
        app = app.merge(plane.router());
        roles.push(format!("data plane for shards {}", shards.join(", ")));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "tenantry storefront on http://{addr} ({}); Ctrl-C to stop",
        roles.join(", ")
    );
    tracing::info!(%addr, roles = ?roles, "storefront serving");
    let watched = pinned.clone().map(|key| (key, config.source.clone()));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            match watched {
                Some((key, source)) => tokio::select! {
                    _ = super::serve::shutdown_signal() => {}
                    why = outlived(catalog, key, source) => {
                        tracing::warn!("{why}: stopping");
                        eprintln!("{why}: stopping");
                    }
                },
                None => super::serve::shutdown_signal().await,
            }
        })
        .await;
    router.close().await;
    served.context("serving HTTP")
}

/// A dedicated tenant's storefront checks the licence it was given (`TENANTRY_LICENCE`, with
/// `TENANTRY_LICENCE_PUBLIC_KEY`) before it serves: a forged, altered or expired licence, or
/// one issued to another tenant, stops it here.
fn check_licence() -> Result<()> {
    let Ok(token) = std::env::var("TENANTRY_LICENCE") else {
        return Ok(());
    };
    let key = std::env::var("TENANTRY_LICENCE_PUBLIC_KEY")
        .context("TENANTRY_LICENCE is set without TENANTRY_LICENCE_PUBLIC_KEY to check it with")?;
    let key = LicencePublicKey::parse(&key).context("TENANTRY_LICENCE_PUBLIC_KEY")?;
    let licence = key
        .verify(&token, chrono::Utc::now())
        .context("TENANTRY_LICENCE does not verify")?;
    if let Ok(tenant) = std::env::var("TENANT_ID")
        && tenant != licence.tenant_id
    {
        anyhow::bail!(
            "TENANTRY_LICENCE was issued to tenant {}, not to TENANT_ID {tenant}",
            licence.tenant_id
        );
    }
    tracing::info!(
        plan = licence.plan,
        tenant = licence.slug,
        "licence verified"
    );
    Ok(())
}

/// Resolves when a dedicated tenant's storefront has outlived what it serves: its tenant is
/// deleted, or the configuration it was started with is gone (its installation was removed).
async fn outlived(
    catalog: std::sync::Arc<dyn tenantry_catalog::CatalogStore>,
    key: TenantKey,
    source: Option<std::path::PathBuf>,
) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tick.tick().await;
        if let Some(path) = &source
            && !path.exists()
        {
            return format!("the configuration {} is gone", path.display());
        }
        if let TenantKey::Id(id) = &key
            && let Ok(tenant) = catalog.tenant(*id).await
            && tenant.state == tenantry_core::TenantState::Deleted
        {
            return format!("tenant {} is deleted", tenant.slug);
        }
    }
}
