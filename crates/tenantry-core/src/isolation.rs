//! How isolated a tenant is: where its rows live, what runs its code, and which engine holds it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a tenant's data lives, from least to most isolated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Rows in the region's shared database, every table scoped by `tenant_id`.
    Shared,
    /// A schema of its own in the region's shared database (PostgreSQL only).
    Schema,
    /// A database of its own on a shard of its region.
    Database,
}

/// What runs a tenant's application code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    /// The region's pooled application serves it alongside other tenants.
    Shared,
    /// An instance of its own (the seeds' `container_per_tenant`).
    Dedicated,
}

/// A database engine a shard runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// SQLite files in a directory: the embedded default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Engine {
    /// Whether the engine can give a tenant a schema of its own.
    pub fn supports_schemas(self) -> bool {
        matches!(self, Engine::Postgres)
    }
}

/// A value that is not one of an enum's lower-case words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! words {
    ($ty:ident, $what:literal, $($variant:ident => $word:literal),+ $(,)?) => {
        impl $ty {
            /// The lower-case word used in the catalog, the CLI and JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $word),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($word, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}
pub(crate) use words;

words!(Isolation, "isolation", Shared => "shared", Schema => "schema", Database => "database");
words!(Compute, "compute", Shared => "shared", Dedicated => "dedicated");
words!(Engine, "engine", Sqlite => "sqlite", Postgres => "postgres");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_name_the_choices() {
        for i in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
            assert_eq!(i.as_str().parse::<Isolation>().unwrap(), i);
        }
        let err = "rows".parse::<Isolation>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown isolation \"rows\": expected one of shared schema database"
        );
    }
}
