//! `tenantry init [DIR]`: a commented, working default configuration and the storefront sample.

use crate::app_files::{INFRASTRUCTURE, STOREFRONT};
use crate::cli::{Cli, InitArgs, Output};
use crate::exit::BadInput;
use anyhow::{Context, Result};
use tenantry_core::config::{
    Config, DEFAULT_TOML, default_toml_postgres, enable_infrastructure, find_program,
};

pub async fn run(cli: &Cli, args: &InitArgs) -> Result<()> {
    let config_path = args.dir.join("tenantry.toml");
    if config_path.exists() && !args.force {
        return Err(BadInput(format!(
            "{} already exists; pass --force to overwrite it",
            config_path.display()
        ))
        .into());
    }
    let app = args.dir.join("app");
    let files = STOREFRONT
        .iter()
        .map(|(path, contents)| (app.join(path), contents))
        .chain(
            INFRASTRUCTURE
                .iter()
                .map(|(path, contents)| (args.dir.join(path), contents)),
        );
    for (target, contents) in files {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, contents)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    let text = match &args.postgres {
        Some(url) => {
            create_catalog_database(url).await?;
            default_toml_postgres(url)
        }
        None => DEFAULT_TOML.to_owned(),
    };
    // Per-tenant infrastructure needs Terraform: turned on only where it can run.
    let text = match find_program("terraform") {
        Some(_) => enable_infrastructure(&text),
        None => text,
    };
    std::fs::write(&config_path, text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    // Prove what was written works before saying so.
    let config = Config::load(&config_path)?;
    if let Some(key_file) = &config.secrets.master_key_file {
        write_master_key(key_file)?;
    }
    match cli.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "config": config_path, "application": app, "catalog": config.catalog.url })
        ),
        Output::Table => {
            println!(
                "Wrote {} and the storefront sample in {}.",
                config_path.display(),
                app.display()
            );
            println!("Next, from {}:", args.dir.display());
            println!("  tenantry tenant create acme --plan standard --region eu-west");
            println!("  tenantry tenant show acme");
        }
    }
    Ok(())
}

/// Writes a fresh master key, readable by its owner only, unless one exists (overwriting it
/// would make every sealed secret unreadable).
fn write_master_key(path: &std::path::Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = tenantry_core::secrets::MasterKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{}\n", key.to_base64()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Creates the database `tenantry_catalog` on the server of `admin_url` unless it exists.
async fn create_catalog_database(admin_url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.with_context(|| {
        format!(
            "connecting to {} (give a superuser URL such as postgres://postgres@127.0.0.1:5432/postgres)",
            tenantry_api::convert::redact_url(admin_url)
        )
    })?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenantry_catalog')",
    )
    .fetch_one(&mut conn)
    .await?;
    if !exists {
        match sqlx::query("CREATE DATABASE tenantry_catalog")
            .execute(&mut conn)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            other => {
                other.context("creating database tenantry_catalog")?;
            }
        }
    }
    conn.close().await?;
    Ok(())
}
