//! Catalog errors. Database errors are classified by kind (unique violation and so on), never
//! by message text, so that callers can tell a duplicate from an outage.

use tenantry_core::IllegalTransition;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// What went wrong in the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The catalog URL names a backend this build does not have.
    #[error("unsupported catalog url {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// A live tenant already has this slug.
    #[error("a tenant with slug {0:?} already exists; choose another slug")]
    DuplicateSlug(String),
    /// No tenant with this slug or id.
    #[error("no tenant {0:?}; `tenantry tenant list` shows the tenants")]
    TenantNotFound(String),
    /// A shard with this name is registered already.
    #[error("a shard named {0:?} exists already; choose another name")]
    DuplicateShard(String),
    /// No shard with this name.
    #[error("no shard {0:?}; `tenantry shard list` shows the shards")]
    ShardNotFound(String),
    /// A token with this name exists already.
    #[error("a token named {0:?} exists already; choose another name or revoke it first")]
    DuplicateToken(String),
    /// No token with this name.
    #[error("no token {0:?}")]
    TokenNotFound(String),
    /// Another tenant has this domain.
    #[error("domain {domain:?} belongs to tenant {slug}; a domain names one tenant at most")]
    DomainTaken { domain: String, slug: String },
    /// No live tenant has this domain.
    #[error("no tenant has domain {0:?}")]
    DomainNotFound(String),
    /// No operation with this id.
    #[error("no operation {0:?}")]
    OperationNotFound(String),
    /// The tenant already has an operation under way.
    #[error(
        "tenant {slug} already has an operation under way ({operation}); wait for it or run `tenantry ops resume {operation}`"
    )]
    OperationInProgress { slug: String, operation: String },
    /// The lifecycle forbids the change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// A stored value could not be read back (a catalog written by a newer version, or edited).
    #[error("the catalog holds an unreadable value in {column}: {problem}")]
    Corrupt {
        column: &'static str,
        problem: String,
    },
    /// Migrating the catalog's own schema failed.
    #[error("could not migrate the catalog schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl CatalogError {
    /// Whether trying again later may succeed (the database was busy or unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Database(e) => is_transient(e),
            _ => false,
        }
    }
}

/// Whether a database error is worth retrying: I/O, pool timeouts, SQLite's busy/locked codes
/// and PostgreSQL's serialization failures and deadlocks, by code rather than by text.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some(
                "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "57P01" | "08006" | "08001"
            )
        ),
        _ => false,
    }
}

/// Whether a PostgreSQL transaction lost a race and was rolled back as a whole, so that running
/// it again from the start is safe: a serialization failure (`40001`) or a deadlock (`40P01`).
pub(crate) fn is_conflict(e: &CatalogError) -> bool {
    matches!(e, CatalogError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Whether a database error is a foreign-key violation (a row names one that does not exist).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
