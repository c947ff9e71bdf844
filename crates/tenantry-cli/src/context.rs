//! Opening what a command needs: the configuration, the catalog and the orchestrator.

use crate::cli::Cli;
use anyhow::{Context as _, Result};
use std::sync::Arc;
use tenantry_core::config::Config;
use tenantry_orchestrator::Orchestrator;

/// Loads the configuration named on the command line (or found by default).
pub fn load_config(cli: &Cli) -> Result<Arc<Config>> {
    let path = Config::locate(cli.config.as_deref())?;
    Ok(Arc::new(Config::load(&path)?))
}

/// Who is acting, for the audit trail.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Opens the catalog and the orchestrator over it.
pub async fn open(cli: &Cli) -> Result<Orchestrator> {
    let config = load_config(cli)?;
    let catalog = tenantry_catalog::open(&config.catalog.url)
        .await
        .with_context(|| "opening the catalog".to_string())?;
    Ok(Orchestrator::new(config, catalog, actor()).await?)
}
