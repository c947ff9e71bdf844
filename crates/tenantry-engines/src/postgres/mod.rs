//! Tenant spaces on a PostgreSQL shard: the shared database under forced row-level security,
//! a schema per tenant, a database (and role) per tenant, and the warm pool.
//!
//! - [`spaces`]: [`PgSpaces`], the driver: where each space lives, connections, migrations,
//!   seeds, status, removal, pooled databases.
//! - [`moves`]: a live move's building blocks: change capture, batched copy, catch-up, write
//!   pause, checksums.
//! - [`security`]: row-level security and privileges after each migration.
//! - [`roles`]: the application role and the tenants' own roles, with generated passwords sent
//!   only as SCRAM verifiers.
//! - `connections`: connections into spaces, counted per shard, parked between calls and
//!   closed by upkeep.
//! - `introspect`: what the driver reads of a space's schema (tables, foreign keys, ledgers).
//! - `sql`: running statements built from validated identifiers; SQLSTATEs.

mod connections;
mod introspect;
pub mod moves;
pub mod roles;
pub mod security;
pub mod spaces;
mod sql;

pub use connections::IDLE_CONNECTIONS;
pub use roles::APP_ROLE;
pub use security::{POLICY, TENANT_SETTING};
pub use spaces::PgSpaces;
