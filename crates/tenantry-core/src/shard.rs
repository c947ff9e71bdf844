//! The shard resolver: which server of the tenant's region receives a new tenant space.
//!
//! Residency is a hard rule: a tenant is only ever placed on a shard of its own region, and a
//! region without room is an error that says so, never a silent fallback to another region.

use crate::isolation::{Engine, Isolation, UnknownValue, words};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Whether a shard takes new tenants.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Takes new tenants while it has room.
    #[default]
    Active,
    /// Keeps its tenants but takes no new ones.
    Draining,
}

words!(ShardState, "shard state", Active => "active", Draining => "draining");

/// What the resolver needs to know of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardUsage {
    pub name: String,
    pub region: String,
    pub engine: Engine,
    pub state: ShardState,
    /// How many dedicated tenant spaces (databases) it may hold.
    pub capacity: u32,
    /// How many it holds now.
    pub used: u32,
}

impl ShardUsage {
    pub fn room_left(&self) -> u32 {
        self.capacity.saturating_sub(self.used)
    }
}

/// Why no shard could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The region has no shard at all.
    #[error(
        "region {region:?} has no shard; add one to tenantry.toml or with `tenantry shard add`"
    )]
    NoShards { region: String },
    /// Every shard of the region is draining or full.
    #[error(
        "region {region:?} has no shard with room for a new tenant database ({detail}); add a shard to the region or raise a shard's capacity — tenants are never placed outside their region"
    )]
    RegionFull { region: String, detail: String },
    /// An operator asked for a shard that cannot take the tenant.
    #[error("shard {shard:?} cannot take this tenant: {problem}")]
    RequestedShardUnusable { shard: String, problem: String },
}

/// Picks the shard for a tenant space of `isolation` in `region`.
///
/// Shared and schema spaces live in the region's shared database, so they go to the region's
/// shared shard (`shared_shard`). A database space goes to the active shard of the region with
/// the most room left (ties broken by name, so the choice is deterministic), or to `requested`
/// when an operator or override names one.
pub fn resolve_shard<'a>(
    region: &str,
    isolation: Isolation,
    shared_shard: &str,
    requested: Option<&str>,
    shards: &'a [ShardUsage],
) -> Result<&'a ShardUsage, ResolveError> {
    let in_region: Vec<&ShardUsage> = shards.iter().filter(|s| s.region == region).collect();
    if in_region.is_empty() {
        return Err(ResolveError::NoShards {
            region: region.to_owned(),
        });
    }
    if isolation != Isolation::Database {
        return in_region
            .into_iter()
            .find(|s| s.name == shared_shard)
            .ok_or_else(|| ResolveError::NoShards {
                region: region.to_owned(),
            });
    }
    if let Some(name) = requested {
        let shard = shards.iter().find(|s| s.name == name).ok_or_else(|| {
            ResolveError::RequestedShardUnusable {
                shard: name.to_owned(),
                problem: "there is no such shard".into(),
            }
        })?;
        let problem = if shard.region != region {
            Some(format!(
                "it is in region {:?}, not {region:?}",
                shard.region
            ))
        } else if shard.state == ShardState::Draining {
            Some("it is draining".into())
        } else if shard.room_left() == 0 {
            Some(format!("it is full ({} of {})", shard.used, shard.capacity))
        } else {
            None
        };
        return match problem {
            Some(problem) => Err(ResolveError::RequestedShardUnusable {
                shard: name.to_owned(),
                problem,
            }),
            None => Ok(shard),
        };
    }
    in_region
        .iter()
        .copied()
        .filter(|s| s.state == ShardState::Active && s.room_left() > 0)
        .max_by(|a, b| {
            a.room_left()
                .cmp(&b.room_left())
                .then_with(|| b.name.cmp(&a.name))
        })
        .ok_or_else(|| ResolveError::RegionFull {
            region: region.to_owned(),
            detail: in_region
                .iter()
                .map(|s| match s.state {
                    ShardState::Draining => format!("{} is draining", s.name),
                    ShardState::Active => format!("{} is full ({}/{})", s.name, s.used, s.capacity),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_test_shard(name: &str, region: &str, capacity: u32, used: u32) -> ShardUsage {
        ShardUsage {
            name: name.into(),
            region: region.into(),
            engine: Engine::Sqlite,
            state: ShardState::Active,
            capacity,
            used,
        }
    }

    #[test]
    fn picks_the_shard_with_most_room_in_the_region() {
        let shards = [
            make_test_shard("eu-1", "eu-west", 10, 9),
            make_test_shard("eu-2", "eu-west", 10, 2),
            make_test_shard("us-1", "us-east", 100, 0),
        ];
        let s = resolve_shard("eu-west", Isolation::Database, "eu-1", None, &shards).unwrap();
        assert_eq!(s.name, "eu-2");
    }

    #[test]
    fn never_leaves_the_region_even_when_full() {
        let mut shards = vec![
            make_test_shard("eu-1", "eu-west", 1, 1),
            make_test_shard("us-1", "us-east", 100, 0),
        ];
        shards.push(ShardUsage {
            state: ShardState::Draining,
            ..make_test_shard("eu-2", "eu-west", 10, 0)
        });
        let err = resolve_shard("eu-west", Isolation::Database, "eu-1", None, &shards).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("eu-1 is full (1/1)"), "{msg}");
        assert!(msg.contains("eu-2 is draining"), "{msg}");
        assert!(msg.contains("never placed outside their region"), "{msg}");
    }

    #[test]
    fn shared_and_schema_go_to_the_regions_shared_shard() {
        let shards = [
            make_test_shard("eu-1", "eu-west", 10, 10),
            make_test_shard("eu-2", "eu-west", 10, 0),
        ];
        for iso in [Isolation::Shared, Isolation::Schema] {
            let s = resolve_shard("eu-west", iso, "eu-1", None, &shards).unwrap();
            assert_eq!(s.name, "eu-1");
        }
    }

    #[test]
    fn a_requested_shard_of_another_region_is_refused() {
        let shards = [
            make_test_shard("eu-1", "eu-west", 10, 0),
            make_test_shard("us-1", "us-east", 10, 0),
        ];
        let err = resolve_shard(
            "eu-west",
            Isolation::Database,
            "eu-1",
            Some("us-1"),
            &shards,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not \"eu-west\""), "{err}");
    }

    #[test]
    fn a_region_without_shards_is_named() {
        let err = resolve_shard("ap-south", Isolation::Shared, "x", None, &[]).unwrap_err();
        assert_eq!(
            err,
            ResolveError::NoShards {
                region: "ap-south".into()
            }
        );
    }
}
