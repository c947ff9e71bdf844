//! Errors of tenant-space drivers.

use std::path::PathBuf;

pub type Result<T, E = SpaceError> = std::result::Result<T, E>;

/// What went wrong inside a tenant space.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceError {
    /// The application's migrations or seeds could not be read.
    #[error("cannot read the application's {what} at {path}: {source}")]
    Application {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A migration file name does not follow `<version>_<description>.sql`.
    #[error("{0}")]
    BadMigrations(String),
    /// An applied migration's file changed since.
    #[error(
        "migration {version} was changed after it was applied to {space}; restore the original file and add a new migration instead"
    )]
    MigrationChanged { version: i64, space: String },
    /// A migration failed; the ones before it stay applied and the next run resumes here.
    #[error("migrating {space} failed: {source}")]
    Migrate {
        space: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// An applied seed's file changed since.
    #[error(
        "seed {name} was changed after it was applied to tenant {tenant}; seeds run once per tenant, so add a new seed file instead"
    )]
    SeedChanged { name: String, tenant: String },
    /// The space is missing where it must exist.
    #[error("tenant space {0} does not exist")]
    Missing(String),
    /// No driver for the shard.
    #[error("no shard {0:?} is known to this process")]
    UnknownShard(String),
    /// The engine cannot provide the isolation asked for.
    #[error("{engine} shards cannot host {isolation} isolation")]
    Unsupported {
        engine: &'static str,
        isolation: &'static str,
    },
    /// The shard's engine has no warm pool.
    #[error("{0} shards have no warm pool: only PostgreSQL shards pre-create databases")]
    NoWarmPool(&'static str),
    /// A name that would reach SQL is unsafe.
    #[error(transparent)]
    Identifier(#[from] tenantry_core::ident::UnsafeIdentifier),
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl SpaceError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SpaceError::Database(e) => transient_sqlx(e),
            SpaceError::Migrate { source, .. } => {
                matches!(source, sqlx::migrate::MigrateError::Execute(e) if transient_sqlx(e))
            }
            SpaceError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

fn transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some(
                "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "57P01" | "08006" | "08001"
            )
        ),
        _ => false,
    }
}
