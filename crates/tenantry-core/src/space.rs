//! A tenant space: what holds one tenant's data.

use crate::isolation::Isolation;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a tenant's data lives. Which fields are set depends on the engine: SQLite spaces have a
/// `path`, PostgreSQL spaces a `database` (and a `schema` for schema isolation). Never holds a
/// password: credentials live encrypted in the catalog, apart from this.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// The isolation the space provides.
    pub kind: Isolation,
    /// The shard (server or directory) the space lives on.
    pub shard: String,
    /// The SQLite file, for SQLite spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub path: Option<PathBuf>,
    /// The PostgreSQL database name, for PostgreSQL spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The PostgreSQL schema name, for schema isolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

impl Space {
    /// A PostgreSQL database of a tenant's own: `database` on `shard`.
    pub fn dedicated_database(shard: &str, database: &str) -> Self {
        Space {
            kind: Isolation::Database,
            shard: shard.to_owned(),
            path: None,
            database: Some(database.to_owned()),
            schema: None,
        }
    }
}
