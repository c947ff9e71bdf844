//! `tenantry init [DIR]`: a commented, working default configuration and the storefront sample.

use crate::app_files::STOREFRONT;
use crate::cli::{Cli, InitArgs, Output};
use crate::exit::BadInput;
use anyhow::{Context, Result};
use tenantry_core::config::{Config, DEFAULT_TOML};

pub fn run(cli: &Cli, args: &InitArgs) -> Result<()> {
    let config_path = args.dir.join("tenantry.toml");
    if config_path.exists() && !args.force {
        return Err(BadInput(format!(
            "{} already exists; pass --force to overwrite it",
            config_path.display()
        ))
        .into());
    }
    let app = args.dir.join("app");
    for (path, contents) in STOREFRONT {
        let target = app.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, contents)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    std::fs::write(&config_path, DEFAULT_TOML)
        .with_context(|| format!("writing {}", config_path.display()))?;
    // Prove what was written works before saying so.
    let config = Config::load(&config_path)?;
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
