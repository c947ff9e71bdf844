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
    /// A shard's configuration lacks what its engine needs (a SQLite directory, a PostgreSQL
    /// URL).
    #[error("{engine} shard {shard:?} has no {setting} configured")]
    MissingShardSetting {
        shard: String,
        engine: &'static str,
        setting: &'static str,
    },
    /// A PostgreSQL shard's admin URL cannot be parsed. (The URL itself is not repeated: it may
    /// carry a password.)
    #[error("the admin URL of PostgreSQL shard {shard:?} is invalid: {source}")]
    InvalidShardUrl {
        shard: String,
        #[source]
        source: sqlx::Error,
    },
    /// The engine cannot provide the isolation asked for.
    #[error("{engine} shards cannot host {isolation} isolation")]
    Unsupported {
        engine: &'static str,
        isolation: &'static str,
    },
    /// The space does not say where it lives (no database, no schema) as its kind needs.
    #[error("tenant space {0} is incomplete")]
    BadSpace(String),
    /// The space is busy with something that ends by itself (open transactions a move waits
    /// for): try again.
    #[error("{0}")]
    Busy(String),
    /// A schema change was refused because the space holds tenants under move, whose copies
    /// must keep their shape (SQLite's counterpart of the PostgreSQL guard's SQLSTATE 55006):
    /// it passes once the moves end.
    #[error(
        "migrating {space} refused: it holds tenants being moved ({tenants}), whose copies must keep their shape; end the move first (tenantry tenant move SLUG --complete or --rollback, or --cancel before its switch), then run the change again"
    )]
    UnderMove { space: String, tenants: String },
    /// A move's comparison found the target's rows of the tenant differing from the source's:
    /// nothing was switched and the source goes on taking the tenant's writes. Names each
    /// differing table with its counts and checksums, and the differing rows by key range.
    #[error("the target differs from the source: {0}")]
    TargetDiffers(String),
    /// The shard's engine has no warm pool.
    #[error("{0} shards have no warm pool: only PostgreSQL shards pre-create databases")]
    NoWarmPool(&'static str),
    /// `adopt` was given a database that is not (or no longer) a pooled database.
    #[error("{0:?} is not a pooled database of this shard")]
    NotPooled(String),
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
            SpaceError::Busy(_) | SpaceError::UnderMove { .. } => true,
            SpaceError::Migrate { source, .. } => {
                matches!(source,
                    sqlx::migrate::MigrateError::Execute(e)
                    | sqlx::migrate::MigrateError::ExecuteMigration(e, _) if transient_sqlx(e))
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
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().as_deref().is_some_and(transient_code),
        _ => false,
    }
}

/// Whether an error code (a PostgreSQL SQLSTATE, or SQLite's numeric result code) says that the
/// same request may succeed later.
fn transient_code(code: &str) -> bool {
    // SQLite: busy and locked, with their extended codes.
    matches!(code, "5" | "6" | "261" | "262" | "517")
        // PostgreSQL class 08: connection exceptions (the server went away, refused us, …).
        || code.starts_with("08")
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "53300" // too_many_connections
                | "55P03" // lock_not_available
                | "55006" // object_in_use (e.g. renaming a database someone is connected to)
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now (starting up, in recovery)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified_by_sqlstate() {
        for transient in [
            "08000", "08001", "08006", "40001", "40P01", "53300", "57P01", "57P03", "5", "517",
        ] {
            assert!(transient_code(transient), "{transient}");
        }
        for permanent in [
            "42P01", "42501", "23505", "3D000", "28P01", "42601", "XX000",
        ] {
            assert!(!transient_code(permanent), "{permanent}");
        }
    }
}
