//! The tenant application: its versioned migrations (per engine) and its seeds.
//!
//! Migrations are files `<version>_<description>.sql` under `<migrations>/<engine>/`, applied
//! with sqlx's migrator, which checksums each file and refuses to go on when an applied one has
//! changed. Seeds are files under `<seeds>/`, applied once per tenant in name order; the
//! placeholders `{{tenant_id}}` and `{{tenant_slug}}` are replaced by values that were
//! validated against strict patterns (a UUID and a slug), so substitution cannot inject SQL.

use crate::error::{Result, SpaceError};
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use std::path::{Path, PathBuf};
use tenantry_core::{Engine, Slug, TenantId};

/// The tenant application's schema and seed data.
#[derive(Debug, Clone)]
pub struct Application {
    migrations: PathBuf,
    seeds: PathBuf,
}

/// One seed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

impl Seed {
    /// Whether the seed is already applied to the tenant, given the checksum its ledger
    /// recorded. A different checksum is an error: seeds run once and are not edited after.
    pub fn already_applied(&self, recorded: Option<&str>, slug: &Slug) -> Result<bool> {
        match recorded {
            None => Ok(false),
            Some(sum) if sum == self.checksum => Ok(true),
            Some(_) => Err(SpaceError::SeedChanged {
                name: self.name.clone(),
                tenant: slug.to_string(),
            }),
        }
    }

    /// The seed's SQL for one tenant.
    pub fn render(&self, id: TenantId, slug: &Slug) -> String {
        self.sql
            .replace("{{tenant_id}}", &id.to_string())
            .replace("{{tenant_slug}}", slug.as_str())
    }
}

impl Application {
    pub fn new(migrations: impl Into<PathBuf>, seeds: impl Into<PathBuf>) -> Self {
        Self {
            migrations: migrations.into(),
            seeds: seeds.into(),
        }
    }

    /// The directory of migrations for `engine`.
    pub fn migrations_dir(&self, engine: Engine) -> PathBuf {
        self.migrations.join(engine.as_str())
    }

    /// The migrator for `engine`, with sqlx's database-wide lock off: Tenantry serialises
    /// migrations of one space itself, and a database-wide lock would serialise all the
    /// schemas of a server.
    pub async fn migrator(&self, engine: Engine) -> Result<Migrator> {
        let dir = self.migrations_dir(engine);
        if !dir.is_dir() {
            return Err(SpaceError::Application {
                what: "migrations",
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let mut migrator = Migrator::new(dir.as_path()).await.map_err(|e| {
            SpaceError::BadMigrations(format!("migrations in {}: {e}", dir.display()))
        })?;
        migrator.set_locking(false);
        Ok(migrator)
    }

    /// The newest migration version for `engine`, if there is any migration.
    pub async fn latest_version(&self, engine: Engine) -> Result<Option<i64>> {
        Ok(self.migrator(engine).await?.iter().map(|m| m.version).max())
    }

    /// The seeds, in name order.
    pub fn seeds(&self) -> Result<Vec<Seed>> {
        read_seeds(&self.seeds)
    }
}

fn read_seeds(dir: &Path) -> Result<Vec<Seed>> {
    let io = |source| SpaceError::Application {
        what: "seeds",
        path: dir.to_path_buf(),
        source,
    };
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let sql = std::fs::read_to_string(&path).map_err(io)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        seeds.push(Seed {
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
            name,
            sql,
        });
    }
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_sorted_checksummed_and_rendered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0002_b.sql"), "SELECT '{{tenant_slug}}';").unwrap();
        std::fs::write(dir.path().join("0001_a.sql"), "SELECT '{{tenant_id}}';").unwrap();
        std::fs::write(dir.path().join("README.md"), "not a seed").unwrap();
        let seeds = read_seeds(dir.path()).unwrap();
        assert_eq!(
            seeds.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["0001_a.sql", "0002_b.sql"]
        );
        assert_eq!(seeds[0].checksum.len(), 64);
        let id: TenantId = "0190a0a0-0000-7000-8000-000000000001".parse().unwrap();
        let slug = Slug::parse("acme").unwrap();
        assert_eq!(
            seeds[0].render(id, &slug),
            "SELECT '0190a0a0-0000-7000-8000-000000000001';"
        );
        assert_eq!(seeds[1].render(id, &slug), "SELECT 'acme';");
    }
}
