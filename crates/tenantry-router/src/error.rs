//! The router's errors: what an application must tell apart to answer its own callers (an
//! unknown tenant is a 404, a suspended one a 403, a moving one a 503 with `Retry-After`).

use tenantry_core::TenantState;

pub type Result<T, E = RouterError> = std::result::Result<T, E>;

/// SQLSTATE `lock_not_available`, which a tenant's old place raises while its writes are paused
/// for a move (and for good once it has moved away).
const PAUSED_FOR_MOVE: &str = "55P03";

/// SQLSTATEs of a transaction the server rolled back to resolve a conflict with another
/// (`deadlock_detected`, `serialization_failure`): running it again is the remedy.
const CONFLICTS: [&str; 2] = ["40P01", "40001"];

/// What went wrong reaching a tenant's data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No live tenant has this id, slug or domain.
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    /// The request named no tenant (no known host, no `X-Tenant`).
    #[error("the request names no tenant: send a tenant's domain as Host or its slug as X-Tenant")]
    NoTenant,
    /// The tenant exists but is suspended: its data is kept, not served.
    #[error("tenant {slug} is suspended")]
    Suspended { slug: String },
    /// The tenant is not serving (being provisioned, deleted, or failed).
    #[error("tenant {slug} is {state}, not active")]
    NotServing { slug: String, state: TenantState },
    /// The tenant is being moved and its writes stayed paused longer than the router holds a
    /// request; retrying shortly succeeds.
    #[error("tenant {slug} is being moved; retry in a moment")]
    Moving { slug: String },
    /// A dedicated tenant's credentials could not be read.
    #[error("the credentials of tenant {slug} cannot be opened: {reason}")]
    Credentials { slug: String, reason: String },
    /// The catalog's record of the tenant's place is not one the router can reach.
    #[error("tenant {slug}'s space {space} cannot be routed to: {reason}")]
    Unroutable {
        slug: String,
        space: String,
        reason: String,
    },
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] tenantry_catalog::CatalogError),
    /// The tenant's database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl RouterError {
    /// Whether the tenant's place refused a write because the tenant is being (or has been)
    /// moved: the router refreshes its placement and tries again.
    pub fn is_paused_for_move(&self) -> bool {
        match self {
            RouterError::Database(e) => paused_for_move(e),
            _ => false,
        }
    }

    /// Whether the server rolled the transaction back to resolve a conflict (a deadlock, a
    /// serialization failure): the router runs it again.
    pub fn is_conflict(&self) -> bool {
        match self {
            RouterError::Database(e) => rolled_back_by_conflict(e),
            _ => false,
        }
    }
}

/// Whether a database error is a move's write pause: PostgreSQL's SQLSTATE, or the refusal a
/// SQLite file raises (a trigger's code, which other triggers share, and the move's message).
pub fn paused_for_move(error: &sqlx::Error) -> bool {
    use tenantry_engines::sqlite::moves::{WRITE_REFUSED, WRITE_REFUSED_CODE};
    error.as_database_error().is_some_and(|e| {
        e.code().is_some_and(|code| {
            code == PAUSED_FOR_MOVE
                || (code == WRITE_REFUSED_CODE && e.message().contains(WRITE_REFUSED))
        })
    })
}

/// Whether a database error rolled its transaction back to resolve a conflict.
pub fn rolled_back_by_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| CONFLICTS.contains(&code.as_ref()))
}

/// Errors of application code run by [`Router::transaction`](crate::Router::transaction): the
/// router retries the code when its error says the tenant's writes were paused for a move, or
/// that the server rolled it back to resolve a conflict.
pub trait RouteError: From<RouterError> + From<sqlx::Error> {
    /// Whether the error is a move's write pause.
    fn is_paused_for_move(&self) -> bool;
    /// Whether the error is a deadlock or a serialization failure.
    fn is_conflict(&self) -> bool;
}

impl RouteError for RouterError {
    fn is_paused_for_move(&self) -> bool {
        RouterError::is_paused_for_move(self)
    }

    fn is_conflict(&self) -> bool {
        RouterError::is_conflict(self)
    }
}
