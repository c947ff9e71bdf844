//! The engine side of a live move: one interface over PostgreSQL's building blocks
//! ([`tenantry_engines::postgres::moves`], between two shards, possibly two servers) and
//! SQLite's ([`tenantry_engines::sqlite::moves`], between two files), so that the steps of a
//! move (`crate::moves`) read the same on both engines. A move never crosses engines.

use crate::error::StepError;
use crate::service::Orchestrator;
use serde_json::Value;
use tenantry_core::TenantId;
use tenantry_core::space::Space;
use tenantry_engines::postgres::PgSpaces;
use tenantry_engines::postgres::moves::{MoveRoute, MoveTable};
use tenantry_engines::sqlite::SqliteSpaces;

type Result<T> = std::result::Result<T, StepError>;

/// One direction of a move: a tenant's rows from `source` to `target`.
#[derive(Clone, Copy)]
pub(crate) enum Mover<'a> {
    /// From a space of `source`'s shard to a space of the route's (`route.to`).
    Postgres {
        source: &'a PgSpaces,
        route: MoveRoute<'a>,
    },
    /// Between two files; the source's driver does both ends (it attaches the other file).
    Sqlite {
        driver: &'a SqliteSpaces,
        tenant: TenantId,
        source: &'a Space,
        target: &'a Space,
    },
}

impl Mover<'_> {
    /// The tenant tables of the source, parents first.
    pub(crate) async fn tables(&self) -> Result<Vec<MoveTable>> {
        Ok(match self {
            Mover::Postgres { source, route } => source.move_tables(route.source).await?,
            Mover::Sqlite { driver, source, .. } => driver.move_tables(source).await?,
        })
    }

    /// The tenant's rows at the source, over `tables`.
    pub(crate) async fn count_rows(&self, tables: &[MoveTable]) -> Result<i64> {
        Ok(match self {
            Mover::Postgres { source, route } => {
                source
                    .count_rows(route.source, route.tenant, tables)
                    .await?
            }
            Mover::Sqlite {
                driver,
                tenant,
                source,
                ..
            } => driver.count_rows(source, *tenant, tables).await?,
        })
    }

    /// Copies the next batch of `table` after key `after`: how many rows, and the last key
    /// (`None` once the table is done).
    pub(crate) async fn copy_batch(
        &self,
        table: &MoveTable,
        after: Option<&Value>,
        limit: i64,
    ) -> Result<(usize, Option<Value>)> {
        Ok(match self {
            Mover::Postgres { source, route } => {
                source.copy_batch(*route, table, after, limit).await?
            }
            Mover::Sqlite {
                driver,
                tenant,
                source,
                target,
            } => {
                driver
                    .copy_batch(source, target, *tenant, table, after, limit)
                    .await?
            }
        })
    }

    /// Applies at most `limit` of the logged changes to the target: how many.
    pub(crate) async fn apply_changes(&self, tables: &[MoveTable], limit: i64) -> Result<usize> {
        Ok(match self {
            Mover::Postgres { source, route } => {
                source.apply_changes(*route, tables, limit).await?
            }
            Mover::Sqlite {
                driver,
                tenant,
                source,
                target,
            } => {
                driver
                    .apply_changes(source, target, *tenant, tables, limit)
                    .await?
            }
        })
    }
}

impl Orchestrator {
    /// The mover of `tenant`'s rows from `source` to `target`: both on PostgreSQL shards, or
    /// both on SQLite shards.
    pub(crate) fn mover<'a>(
        &'a self,
        tenant: TenantId,
        source: &'a Space,
        target: &'a Space,
    ) -> Result<Mover<'a>> {
        let (from, to) = (
            self.spaces.driver(&source.shard)?,
            self.spaces.driver(&target.shard)?,
        );
        if let (Some(from), Some(to)) = (from.postgres(), to.postgres()) {
            return Ok(Mover::Postgres {
                source: from,
                route: MoveRoute {
                    tenant,
                    source,
                    to,
                    target,
                },
            });
        }
        if let (Some(driver), Some(_)) = (from.sqlite(), to.sqlite()) {
            return Ok(Mover::Sqlite {
                driver,
                tenant,
                source,
                target,
            });
        }
        Err(StepError::permanent(format!(
            "a live move stays on one engine: shard {} is {}, shard {} is {}",
            source.shard,
            from.engine(),
            target.shard,
            to.engine()
        )))
    }

    /// Starts (`on`) or stops logging the tenant's changes in `space`; stopping also lets the
    /// space take the tenant's writes again after a switch away from it.
    pub(crate) async fn capture(&self, space: &Space, tenant: TenantId, on: bool) -> Result<()> {
        let driver = self.spaces.driver(&space.shard)?;
        match (driver.postgres(), driver.sqlite()) {
            (Some(pg), _) if on => pg.start_capture(space, tenant).await?,
            (Some(pg), _) => pg.stop_capture(space, tenant).await?,
            (_, Some(sqlite)) if on => sqlite.start_capture(space, tenant).await?,
            (_, Some(sqlite)) => sqlite.stop_capture(space, tenant).await?,
            _ => {
                return Err(StepError::permanent(format!(
                    "shard {} has no live moves",
                    space.shard
                )));
            }
        }
        Ok(())
    }

    /// The switch of `mover`: returns how long the tenant's writes were paused, in ms.
    pub(crate) async fn switch_over(&self, mover: Mover<'_>) -> Result<u64> {
        match mover {
            Mover::Postgres { route, .. } => self.switch(route).await,
            Mover::Sqlite {
                driver,
                tenant,
                source,
                target,
            } => {
                let tables = driver.move_tables(source).await?;
                Ok(driver.switch(source, target, tenant, &tables).await?)
            }
        }
    }
}
