//! The catalog on SQLite: the embedded default, for one process.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions so that two writers queue on the database lock
//! instead of failing half-way through an upgrade from a read lock. That one writer at a time
//! is also what makes claims (operations, pooled databases) atomic here, and what numbers
//! outbox rows in commit order.
//!
//! The catalog's migrations are recorded in `tenantry_catalog_migrations`; catalogs made when
//! they went to `_sqlx_migrations` are moved over once (`adopt_legacy_ledger`).

use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::model::*;
use crate::store::CatalogStore;
use crate::{CatalogError, MIGRATIONS_TABLE, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use tenantry_core::config::ShardConfig;
use tenantry_core::domain::{Domain, TenantDomains};
use tenantry_core::shard::ShardState;
use tenantry_core::{TenantId, TenantState};
use uuid::Uuid;

/// Where catalogs made before [`MIGRATIONS_TABLE`] recorded their migrations.
const LEGACY_MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The SQLite catalog.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    /// Opens (creating the file and its directory if needed) and migrates the catalog.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = options.get_filename().parent() {
            std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let mut migrator = sqlx::migrate!("migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        adopt_legacy_ledger(&pool, &migrator).await?;
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }

    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Catalogs made before the catalog had a ledger of its own recorded their migrations in
/// `_sqlx_migrations`. Once, before migrating, the rows there that are the catalog's (same
/// version *and* checksum) move to [`MIGRATIONS_TABLE`], so such a catalog is not migrated a
/// second time and `_sqlx_migrations` is left to whatever else uses the file.
async fn adopt_legacy_ledger(pool: &SqlitePool, migrator: &Migrator) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
    )
    .bind(MIGRATIONS_TABLE)
    .bind(LEGACY_MIGRATIONS_TABLE)
    .fetch_all(&mut *tx)
    .await?;
    if tables.iter().any(|t| t == MIGRATIONS_TABLE)
        || !tables.iter().any(|t| t == LEGACY_MIGRATIONS_TABLE)
    {
        return Ok(());
    }
    tx.ensure_migrations_table(MIGRATIONS_TABLE).await?;
    let columns = "version, description, installed_on, success, checksum, execution_time";
    for m in migrator.iter() {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {MIGRATIONS_TABLE} ({columns})
             SELECT {columns} FROM {LEGACY_MIGRATIONS_TABLE} WHERE version = ? AND checksum = ?"
        )))
        .bind(m.version)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {LEGACY_MIGRATIONS_TABLE} WHERE version = ? AND checksum = ?"
        )))
        .bind(m.version)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("catalog values serialise")
}

fn parse_json<T: DeserializeOwned>(column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| CatalogError::Corrupt {
        column,
        problem: e.to_string(),
    })
}

fn parse_word<T: FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| CatalogError::Corrupt {
        column,
        problem: e.to_string(),
    })
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant> {
    let space: Option<String> = row.try_get("space")?;
    let failure: Option<String> = row.try_get("failure")?;
    Ok(Tenant {
        id: parse_word("tenants.id", row.try_get("id")?)?,
        slug: row.try_get("slug")?,
        plan: row.try_get("plan")?,
        region: row.try_get("region")?,
        state: parse_word("tenants.state", row.try_get("state")?)?,
        isolation: parse_word("tenants.isolation", row.try_get("isolation")?)?,
        compute: parse_word("tenants.compute", row.try_get("compute")?)?,
        shard: row.try_get("shard")?,
        placement: parse_json("tenants.placement", row.try_get("placement")?)?,
        characteristics: parse_json("tenants.characteristics", row.try_get("characteristics")?)?,
        space: space.map(|s| parse_json("tenants.space", &s)).transpose()?,
        admin_email: row.try_get("admin_email")?,
        schema_version: row.try_get("schema_version")?,
        failure: failure
            .map(|s| parse_json("tenants.failure", &s))
            .transpose()?,
        epoch: row.try_get("epoch")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<Event> {
    Ok(Event {
        seq: row.try_get("seq")?,
        id: parse_word("outbox.id", row.try_get("id")?)?,
        tenant_id: parse_word("outbox.tenant_id", row.try_get("tenant_id")?)?,
        event_type: parse_word("outbox.event_type", row.try_get("event_type")?)?,
        payload: parse_json("outbox.payload", row.try_get("payload")?)?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

async fn load_tenant(conn: &mut SqliteConnection, id: TenantId) -> Result<Tenant> {
    let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CatalogError::TenantNotFound(id.to_string()))?;
    tenant_from_row(&row)
}

async fn insert_transition(
    conn: &mut SqliteConnection,
    id: TenantId,
    from: Option<TenantState>,
    to: TenantState,
    cause: &Cause,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO transitions (tenant_id, from_state, to_state, trigger, actor, details, at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(&cause.trigger)
    .bind(&cause.actor)
    .bind(json(&cause.details))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_events(
    conn: &mut SqliteConnection,
    id: TenantId,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event_type, payload, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(id.to_string())
        .bind(event.event_type.as_str())
        .bind(json(&event.payload))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_operation(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    op: &NewOperation,
    now: DateTime<Utc>,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO operations (id, tenant_id, kind, state, params, created_at, updated_at)
         VALUES (?, ?, ?, 'pending', ?, ?, ?)",
    )
    .bind(op.id.to_string())
    .bind(tenant.id.to_string())
    .bind(op.kind.as_str())
    .bind(json(&op.params))
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await;
    if let Err(e) = inserted {
        // SQLite does not say which index refused the row: the tenant's open operation, if
        // there is one, is why (otherwise it was the operation's id).
        if is_unique_violation(&e) {
            let open: Option<String> = sqlx::query_scalar(
                "SELECT id FROM operations WHERE tenant_id = ?
                 AND state IN ('pending', 'running', 'rolling_back')",
            )
            .bind(tenant.id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(open) = open {
                return Err(CatalogError::OperationInProgress {
                    slug: tenant.slug.clone(),
                    operation: open,
                });
            }
        }
        return Err(e.into());
    }
    for (idx, name) in op.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO operation_steps (operation_id, idx, name, state) VALUES (?, ?, ?, 'pending')",
        )
        .bind(op.id.to_string())
        .bind(idx as i64)
        .bind(*name)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn load_operation(conn: &mut SqliteConnection, id: Uuid) -> Result<Operation> {
    let row = sqlx::query("SELECT * FROM operations WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CatalogError::OperationNotFound(id.to_string()))?;
    let steps = sqlx::query("SELECT * FROM operation_steps WHERE operation_id = ? ORDER BY idx")
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Step {
                idx: r.try_get("idx")?,
                name: r.try_get("name")?,
                state: parse_word("operation_steps.state", r.try_get("state")?)?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Operation {
        id,
        tenant_id: parse_word("operations.tenant_id", row.try_get("tenant_id")?)?,
        kind: parse_word("operations.kind", row.try_get("kind")?)?,
        state: parse_word("operations.state", row.try_get("state")?)?,
        params: parse_json("operations.params", row.try_get("params")?)?,
        error: row.try_get("error")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        steps,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

#[async_trait]
impl CatalogStore for SqliteCatalog {
    async fn sync_shards(&self, declared: &[ShardConfig]) -> Result<()> {
        let mut tx = self.write().await?;
        let now = Utc::now();
        for s in declared {
            sqlx::query(
                "INSERT INTO shards (name, region, engine, url, directory, capacity, state, source, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'config', ?)
                 ON CONFLICT (name) DO UPDATE SET region = excluded.region, engine = excluded.engine,
                   url = excluded.url, directory = excluded.directory, capacity = excluded.capacity,
                   state = CASE WHEN excluded.state = 'draining' THEN 'draining' ELSE shards.state END,
                   source = 'config'",
            )
            .bind(&s.name)
            .bind(&s.region)
            .bind(s.engine.as_str())
            .bind(&s.url)
            .bind(s.directory.as_ref().map(|d| d.display().to_string()))
            .bind(i64::from(s.capacity))
            .bind(s.state.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        let rows = sqlx::query(
            "SELECT s.*, (SELECT count(*) FROM tenants t WHERE t.shard = s.name
                 AND t.isolation = 'database' AND t.state <> 'deleted') AS used
             FROM shards s ORDER BY s.region, s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Shard {
                    name: r.try_get("name")?,
                    region: r.try_get("region")?,
                    engine: parse_word("shards.engine", r.try_get("engine")?)?,
                    url: r.try_get("url")?,
                    directory: r.try_get("directory")?,
                    capacity: r.try_get::<i64, _>("capacity")? as u32,
                    state: parse_word("shards.state", r.try_get("state")?)?,
                    used: r.try_get::<i64, _>("used")? as u32,
                })
            })
            .collect()
    }

    async fn create_tenant(
        &self,
        new: NewTenant,
        cause: Cause,
        operation: NewOperation,
    ) -> Result<(Tenant, Operation)> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, slug, plan, region, state, isolation, compute, shard,
                 placement, characteristics, admin_email, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'requested', ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(&new.slug)
        .bind(&new.characteristics.plan)
        .bind(&new.characteristics.region)
        .bind(new.placement.isolation.as_str())
        .bind(new.placement.compute.as_str())
        .bind(&new.shard)
        .bind(json(&new.placement))
        .bind(json(&new.characteristics))
        .bind(&new.admin_email)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            // SQLite does not say which index refused the row: a live tenant with the slug is
            // why, if there is one (otherwise it was the id).
            if is_unique_violation(&e) {
                let live: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM tenants WHERE slug = ? AND state <> 'deleted'",
                )
                .bind(&new.slug)
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_some() {
                    return Err(CatalogError::DuplicateSlug(new.slug));
                }
            }
            return Err(e.into());
        }
        replace_domains(&mut tx, new.id, &new.domains, now).await?;
        let tenant = load_tenant(&mut tx, new.id).await?;
        insert_transition(&mut tx, new.id, None, TenantState::Requested, &cause, now).await?;
        let created = NewEvent {
            event_type: tenantry_core::events::EventType::TenantCreated,
            payload: serde_json::json!({
                "tenant_id": tenant.id, "slug": tenant.slug, "plan": tenant.plan,
                "region": tenant.region, "isolation": tenant.isolation,
                "placement": tenant.placement,
            }),
        };
        insert_events(&mut tx, new.id, &[created], now).await?;
        insert_operation(&mut tx, &tenant, &operation, now).await?;
        let op = load_operation(&mut tx, operation.id).await?;
        tx.commit().await?;
        Ok((tenant, op))
    }

    async fn tenant_by_domain(&self, domain: &Domain) -> Result<Tenant> {
        let row = sqlx::query(
            "SELECT t.* FROM tenants t JOIN tenant_domains d ON d.tenant_id = t.id
             WHERE d.domain = ?",
        )
        .bind(domain.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::DomainNotFound(domain.to_string()))?;
        tenant_from_row(&row)
    }

    async fn relocate(
        &self,
        id: TenantId,
        relocation: Option<Relocation>,
        cause: Cause,
        events: Vec<NewEvent>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Tenant> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let current = load_tenant(&mut tx, id).await?;
        if let Some(checkpoint) = checkpoint {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM operation_steps WHERE operation_id = ? AND idx = ?",
            )
            .bind(checkpoint.operation.to_string())
            .bind(checkpoint.step)
            .fetch_optional(&mut *tx)
            .await?;
            if state.as_deref() == Some(StepState::Done.as_str()) {
                return Ok(current);
            }
        }
        if let Some(r) = &relocation {
            sqlx::query(
                "UPDATE tenants SET space = ?1, shard = ?2, isolation = ?3,
                     placement = json_set(placement, '$.isolation', ?3),
                     region = coalesce((SELECT region FROM shards WHERE name = ?2), region),
                     characteristics = json_set(characteristics, '$.region',
                         coalesce((SELECT region FROM shards WHERE name = ?2), region)),
                     epoch = epoch + 1, updated_at = ?4
                 WHERE id = ?5",
            )
            .bind(json(&r.space))
            .bind(&r.shard)
            .bind(r.isolation.as_str())
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        insert_transition(&mut tx, id, Some(current.state), current.state, &cause, now).await?;
        insert_events(&mut tx, id, &events, now).await?;
        if let Some(checkpoint) = checkpoint {
            mark_step(
                &mut tx,
                checkpoint.operation,
                checkpoint.step,
                StepState::Done,
                None,
                now,
            )
            .await?;
        }
        let tenant = load_tenant(&mut tx, id).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    async fn merge_operation_params(&self, id: Uuid, patch: &serde_json::Value) -> Result<()> {
        // Read and written under the write lock (`BEGIN IMMEDIATE`): no merge is lost.
        let mut tx = self.write().await?;
        let stored: String = sqlx::query_scalar("SELECT params FROM operations WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let mut params: serde_json::Value = parse_json("operations.params", &stored)?;
        if let (Some(params), Some(patch)) = (params.as_object_mut(), patch.as_object()) {
            params.extend(patch.clone());
        }
        sqlx::query("UPDATE operations SET params = ?, updated_at = ? WHERE id = ?")
            .bind(params.to_string())
            .bind(Utc::now())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenant_stats(&self, tenant: TenantId) -> Result<TenantStats> {
        let row = sqlx::query("SELECT * FROM tenant_stats WHERE tenant_id = ?")
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(TenantStats::default());
        };
        Ok(TenantStats {
            rows: parse_json("tenant_stats.rows", r.try_get("rows")?)?,
            size_bytes: r.try_get("size_bytes")?,
            size_estimated: r.try_get("size_estimated")?,
            collected_at: r.try_get("collected_at")?,
            queries: r.try_get("queries")?,
            query_ms_total: r.try_get("query_ms_total")?,
            queries_since: r.try_get("queries_since")?,
        })
    }

    async fn save_space_stats(
        &self,
        tenant: TenantId,
        rows: &std::collections::BTreeMap<String, i64>,
        size_bytes: i64,
        size_estimated: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_stats (tenant_id, rows, size_bytes, size_estimated, collected_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id) DO UPDATE SET rows = excluded.rows,
                 size_bytes = excluded.size_bytes, size_estimated = excluded.size_estimated,
                 collected_at = excluded.collected_at",
        )
        .bind(tenant.to_string())
        .bind(json(rows))
        .bind(size_bytes)
        .bind(size_estimated)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_queries(&self, tenant: TenantId, queries: i64, ms: f64) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_stats (tenant_id, queries, query_ms_total, queries_since)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (tenant_id) DO UPDATE SET
                 queries = tenant_stats.queries + excluded.queries,
                 query_ms_total = tenant_stats.query_ms_total + excluded.query_ms_total,
                 queries_since = coalesce(tenant_stats.queries_since, excluded.queries_since)",
        )
        .bind(tenant.to_string())
        .bind(queries)
        .bind(ms)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn domains(&self, tenant: TenantId) -> Result<TenantDomains> {
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT domain, is_primary FROM tenant_domains WHERE tenant_id = ? ORDER BY domain",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        crate::model::to_domains(rows)
    }

    async fn set_domains(&self, tenant: TenantId, domains: &TenantDomains) -> Result<()> {
        let mut tx = self.write().await?;
        load_tenant(&mut tx, tenant).await?;
        replace_domains(&mut tx, tenant, domains, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant> {
        let row = sqlx::query(
            "SELECT * FROM tenants WHERE slug = ?
             ORDER BY state = 'deleted', updated_at DESC LIMIT 1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::TenantNotFound(slug.to_owned()))?;
        tenant_from_row(&row)
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        let mut conn = self.pool.acquire().await?;
        load_tenant(&mut conn, id).await
    }

    async fn tenants(&self, f: &TenantFilter) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(
            "SELECT * FROM tenants
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR region = ?2)
               AND (?3 IS NULL OR isolation = ?3) AND (?4 IS NULL OR plan = ?4)
               AND (?5 OR state <> 'deleted')
             ORDER BY created_at, slug",
        )
        .bind(f.state.map(|s| s.as_str()))
        .bind(&f.region)
        .bind(f.isolation.map(|i| i.as_str()))
        .bind(&f.plan)
        .bind(f.include_deleted)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        let mut tx = self.write().await?;
        apply_update(&mut tx, id, &update, Utc::now()).await?;
        let tenant = load_tenant(&mut tx, id).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    async fn append_events(&self, tenant: TenantId, events: Vec<NewEvent>) -> Result<()> {
        let mut tx = self.write().await?;
        load_tenant(&mut tx, tenant).await?;
        insert_events(&mut tx, tenant, &events, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn transition(
        &self,
        id: TenantId,
        to: TenantState,
        cause: Cause,
        events: Vec<NewEvent>,
        update: TenantUpdate,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Tenant> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let current = load_tenant(&mut tx, id).await?;
        if let Some(cp) = checkpoint {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM operation_steps WHERE operation_id = ? AND idx = ?",
            )
            .bind(cp.operation.to_string())
            .bind(cp.step)
            .fetch_optional(&mut *tx)
            .await?;
            if state.as_deref() == Some("done") && current.state == to {
                return Ok(current);
            }
        }
        current.state.transition(to)?;
        sqlx::query("UPDATE tenants SET state = ?, updated_at = ? WHERE id = ?")
            .bind(to.as_str())
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        apply_update(&mut tx, id, &update, now).await?;
        if to == TenantState::Deleted {
            replace_domains(&mut tx, id, &TenantDomains::default(), now).await?;
        }
        insert_transition(&mut tx, id, Some(current.state), to, &cause, now).await?;
        insert_events(&mut tx, id, &events, now).await?;
        if let Some(cp) = checkpoint {
            mark_step(&mut tx, cp.operation, cp.step, StepState::Done, None, now).await?;
        }
        let tenant = load_tenant(&mut tx, id).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    async fn history(&self, id: TenantId) -> Result<Vec<Transition>> {
        let rows = sqlx::query("SELECT * FROM transitions WHERE tenant_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_state")?;
                Ok(Transition {
                    id: r.try_get("id")?,
                    tenant_id: id,
                    from: from
                        .map(|f| parse_word("transitions.from_state", &f))
                        .transpose()?,
                    to: parse_word("transitions.to_state", r.try_get("to_state")?)?,
                    trigger: r.try_get("trigger")?,
                    actor: r.try_get("actor")?,
                    details: parse_json("transitions.details", r.try_get("details")?)?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn events(
        &self,
        tenant: Option<TenantId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE (?1 IS NULL OR tenant_id = ?1) AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )
        .bind(tenant.map(|t| t.to_string()))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn create_operation(&self, tenant: TenantId, op: NewOperation) -> Result<Operation> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let t = load_tenant(&mut tx, tenant).await?;
        insert_operation(&mut tx, &t, &op, now).await?;
        let op = load_operation(&mut tx, op.id).await?;
        tx.commit().await?;
        Ok(op)
    }

    async fn operation(&self, id: Uuid) -> Result<Operation> {
        let mut conn = self.pool.acquire().await?;
        load_operation(&mut conn, id).await
    }

    async fn operations(&self, tenant: Option<TenantId>, limit: i64) -> Result<Vec<Operation>> {
        let mut conn = self.pool.acquire().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE (?1 IS NULL OR tenant_id = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2",
        )
        .bind(tenant.map(|t| t.to_string()))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(load_operation(&mut conn, parse_word("operations.id", &id)?).await?);
        }
        Ok(out)
    }

    async fn claim_operation(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let claimed = sqlx::query(
            "UPDATE operations SET lease_owner = ?, lease_expires_at = ?, updated_at = ?,
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END
             WHERE id = ? AND state IN ('pending', 'running', 'rolling_back')
               AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let op = load_operation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(op))
    }

    async fn claimable_operations(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE state IN ('pending', 'running', 'rolling_back')
               AND (lease_owner IS NULL OR lease_expires_at < ?)
             ORDER BY created_at, id LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        ids.iter()
            .map(|id| parse_word("operations.id", id))
            .collect()
    }

    async fn set_operation_state(
        &self,
        id: Uuid,
        state: OperationState,
        error: Option<String>,
    ) -> Result<()> {
        let now = Utc::now();
        let finished = (!state.is_open()).then_some(now);
        sqlx::query(
            "UPDATE operations SET state = ?, error = COALESCE(?, error), updated_at = ?,
                 finished_at = ?, lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
                 lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(now)
        .bind(finished)
        .bind(finished.is_some())
        .bind(finished.is_some())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_step_state(
        &self,
        id: Uuid,
        idx: i64,
        state: StepState,
        error: Option<String>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        mark_step(&mut conn, id, idx, state, error, Utc::now()).await
    }

    async fn start_step(
        &self,
        id: Uuid,
        idx: i64,
        done: Option<i64>,
        tenant: TenantId,
    ) -> Result<Tenant> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        if let Some(done) = done {
            mark_step(&mut tx, id, done, StepState::Done, None, now).await?;
        }
        mark_step(&mut tx, id, idx, StepState::Running, None, now).await?;
        let tenant = load_tenant(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(tenant)
    }
    async fn add_shard(&self, s: &ShardConfig) -> Result<Shard> {
        let inserted = sqlx::query(
            "INSERT INTO shards (name, region, engine, url, directory, capacity, state, source, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'runtime', ?)",
        )
        .bind(&s.name)
        .bind(&s.region)
        .bind(s.engine.as_str())
        .bind(&s.url)
        .bind(s.directory.as_ref().map(|d| d.display().to_string()))
        .bind(i64::from(s.capacity))
        .bind(s.state.as_str())
        .bind(Utc::now())
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(CatalogError::DuplicateShard(s.name.clone())),
            other => {
                other?;
                self.shard_named(&s.name).await
            }
        }
    }

    async fn set_shard_state(&self, name: &str, state: ShardState) -> Result<Shard> {
        let n = sqlx::query("UPDATE shards SET state = ? WHERE name = ?")
            .bind(state.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CatalogError::ShardNotFound(name.to_owned()));
        }
        self.shard_named(name).await
    }

    async fn put_secret(&self, tenant: TenantId, name: &str, ciphertext: &[u8]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        put_secret(&mut conn, tenant, name, ciphertext).await
    }

    async fn secret(&self, tenant: TenantId, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT ciphertext FROM tenant_secrets WHERE tenant_id = ? AND name = ?",
        )
        .bind(tenant.to_string())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delete_secrets(&self, tenant: TenantId) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = ?")
                .bind(tenant.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn delete_secret(&self, tenant: TenantId, name: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = ? AND name = ?")
                .bind(tenant.to_string())
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    async fn pool_add(&self, e: NewPoolEntry) -> Result<PoolEntry> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO pool_databases (id, shard, database, secret, schema_version, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(&e.shard)
        .bind(&e.database)
        .bind(&e.secret)
        .bind(e.schema_version)
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(|err| match err {
            err if is_foreign_key_violation(&err) => CatalogError::ShardNotFound(e.shard.clone()),
            err => err.into(),
        })?;
        let row = sqlx::query("SELECT * FROM pool_databases WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        pool_entry(&row)
    }

    async fn pool_claim(&self, shard: &str, tenant: TenantId) -> Result<Option<PoolEntry>> {
        let mut tx = self.write().await?;
        let mine = sqlx::query("SELECT * FROM pool_databases WHERE shard = ? AND claimed_by = ?")
            .bind(shard)
            .bind(tenant.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = mine {
            return pool_entry(&row).map(Some);
        }
        let row = sqlx::query(
            "UPDATE pool_databases SET claimed_by = ?, claimed_at = ?
             WHERE id = (SELECT id FROM pool_databases WHERE shard = ? AND claimed_by IS NULL
                         ORDER BY created_at, id LIMIT 1)
             RETURNING *",
        )
        .bind(tenant.to_string())
        .bind(Utc::now())
        .bind(shard)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(pool_entry).transpose()
    }

    async fn pool_remove(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM pool_databases WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pool_adopted(&self, adoption: PoolAdoption) -> Result<()> {
        let mut tx = self.write().await?;
        let tenant = adoption.tenant;
        put_secret(&mut tx, tenant, &adoption.secret_name, &adoption.sealed).await?;
        let update = TenantUpdate {
            space: Some(Some(adoption.space)),
            schema_version: Some(adoption.schema_version),
            ..TenantUpdate::default()
        };
        apply_update(&mut tx, tenant, &update, Utc::now()).await?;
        sqlx::query("DELETE FROM pool_databases WHERE id = ? AND claimed_by = ?")
            .bind(adoption.entry.to_string())
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pool_entries(&self, shard: Option<&str>) -> Result<Vec<PoolEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM pool_databases WHERE (?1 IS NULL OR shard = ?1) ORDER BY created_at, id",
        )
        .bind(shard)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pool_entry).collect()
    }

    async fn infrastructure(&self, tenant: TenantId) -> Result<Option<Infrastructure>> {
        let row = sqlx::query("SELECT * FROM tenant_infrastructure WHERE tenant_id = ?")
            .bind(tenant.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let id: String = r.try_get("id")?;
        let plan: Option<String> = r.try_get("plan")?;
        let outputs: Option<String> = r.try_get("outputs")?;
        Ok(Some(Infrastructure {
            id: parse_word("tenant_infrastructure.id", &id)?,
            tenant_id: tenant,
            status: parse_word("tenant_infrastructure.status", r.try_get("status")?)?,
            tier: r.try_get("tier")?,
            cloud_provider: r.try_get("cloud_provider")?,
            region: r.try_get("region")?,
            namespace: r.try_get("namespace")?,
            configuration: parse_json(
                "tenant_infrastructure.configuration",
                r.try_get("configuration")?,
            )?,
            state_key: r.try_get("state_key")?,
            plan: plan
                .map(|p| parse_json("tenant_infrastructure.plan", &p))
                .transpose()?,
            outputs: outputs
                .map(|o| parse_json("tenant_infrastructure.outputs", &o))
                .transpose()?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        }))
    }

    async fn save_infrastructure(
        &self,
        infra: &Infrastructure,
        transition: Option<NewInfraTransition>,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO tenant_infrastructure (id, tenant_id, status, tier, cloud_provider, region,
                 namespace, configuration, state_key, plan, outputs, error, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id) DO UPDATE SET status = excluded.status, tier = excluded.tier,
                 cloud_provider = excluded.cloud_provider, region = excluded.region,
                 namespace = excluded.namespace, configuration = excluded.configuration,
                 state_key = excluded.state_key, plan = excluded.plan, outputs = excluded.outputs,
                 error = excluded.error, updated_at = excluded.updated_at",
        )
        .bind(infra.id.to_string())
        .bind(infra.tenant_id.to_string())
        .bind(infra.status.as_str())
        .bind(&infra.tier)
        .bind(&infra.cloud_provider)
        .bind(&infra.region)
        .bind(&infra.namespace)
        .bind(infra.configuration.to_string())
        .bind(&infra.state_key)
        .bind(infra.plan.as_ref().map(serde_json::Value::to_string))
        .bind(infra.outputs.as_ref().map(serde_json::Value::to_string))
        .bind(&infra.error)
        .bind(infra.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(t) = transition {
            sqlx::query(
                "INSERT INTO infrastructure_transitions (id, tenant_id, from_state, to_state, trigger, details, at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(infra.tenant_id.to_string())
            .bind(t.from.map(InfraStatus::as_str))
            .bind(t.to.as_str())
            .bind(&t.trigger)
            .bind(t.details.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_events(&mut tx, infra.tenant_id, &events, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn infrastructure_transitions(&self, tenant: TenantId) -> Result<Vec<InfraTransition>> {
        let rows =
            sqlx::query("SELECT * FROM infrastructure_transitions WHERE tenant_id = ? ORDER BY id")
                .bind(tenant.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let from: Option<String> = r.try_get("from_state")?;
                Ok(InfraTransition {
                    id: parse_word("infrastructure_transitions.id", &id)?,
                    tenant_id: tenant,
                    from: from
                        .map(|f| parse_word("infrastructure_transitions.from_state", &f))
                        .transpose()?,
                    to: parse_word(
                        "infrastructure_transitions.to_state",
                        r.try_get("to_state")?,
                    )?,
                    trigger: r.try_get("trigger")?,
                    details: parse_json(
                        "infrastructure_transitions.details",
                        r.try_get("details")?,
                    )?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<CatalogCounts> {
        let tenants = sqlx::query(
            "SELECT state, isolation, region, count(*) AS n FROM tenants
             GROUP BY state, isolation, region ORDER BY state, isolation, region",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TenantCount {
                state: r.try_get("state")?,
                isolation: r.try_get("isolation")?,
                region: r.try_get("region")?,
                count: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let operations = sqlx::query(
            "SELECT kind, state, count(*) AS n FROM operations GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(OperationCount {
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                count: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let last_event_seq: i64 = sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(CatalogCounts {
            tenants,
            operations,
            last_event_seq,
        })
    }

    async fn pool_status(&self) -> Result<Vec<PoolCount>> {
        let rows = sqlx::query(
            "SELECT shard, sum(claimed_by IS NULL) AS available, sum(claimed_by IS NOT NULL) AS claimed
             FROM pool_databases GROUP BY shard ORDER BY shard",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PoolCount {
                    shard: r.try_get("shard")?,
                    available: r.try_get("available")?,
                    claimed: r.try_get("claimed")?,
                })
            })
            .collect()
    }

    async fn create_token(&self, name: &str, scope: &str, hash: &str) -> Result<Token> {
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(scope)
        .bind(hash)
        .bind(Utc::now())
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(CatalogError::DuplicateToken(name.to_owned())),
            other => {
                other?;
                self.token_where("name = ?", name)
                    .await?
                    .ok_or_else(|| CatalogError::TokenNotFound(name.to_owned()))
            }
        }
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>> {
        self.token_where("hash = ? AND revoked_at IS NULL", hash)
            .await
    }

    async fn revoke_token(&self, name: &str) -> Result<Token> {
        sqlx::query("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE name = ?")
            .bind(Utc::now())
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.token_where("name = ?", name)
            .await?
            .ok_or_else(|| CatalogError::TokenNotFound(name.to_owned()))
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token).collect()
    }

    async fn idempotent_response(&self, key: &str) -> Result<Option<IdempotentResponse>> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(idempotent).transpose()
    }

    async fn save_idempotent_response(&self, r: IdempotentResponse) -> Result<IdempotentResponse> {
        sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, status, body, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&r.key)
        .bind(&r.request_hash)
        .bind(i64::from(r.status))
        .bind(json(&r.body))
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(self.idempotent_response(&r.key).await?.unwrap_or(r))
    }

    async fn sink_cursor(&self, sink: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT seq FROM sink_cursors WHERE sink = ?")
                .bind(sink)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    async fn set_sink_cursor(&self, sink: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sink_cursors (sink, seq, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (sink) DO UPDATE SET seq = max(sink_cursors.seq, excluded.seq),
                 updated_at = excluded.updated_at",
        )
        .bind(sink)
        .bind(seq)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_dead_letter(&self, d: DeadLetter) -> Result<()> {
        sqlx::query(
            "INSERT INTO dead_letters (sink, seq, error, attempts, at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (sink, seq) DO UPDATE SET error = excluded.error,
                 attempts = excluded.attempts, at = excluded.at",
        )
        .bind(&d.sink)
        .bind(d.seq)
        .bind(&d.error)
        .bind(d.attempts)
        .bind(d.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query("SELECT * FROM dead_letters ORDER BY sink, seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    sink: r.try_get("sink")?,
                    seq: r.try_get("seq")?,
                    error: r.try_get("error")?,
                    attempts: r.try_get("attempts")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn claim_next_operation(
        &self,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>> {
        let now = Utc::now();
        let mut tx = self.write().await?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE operations SET lease_owner = ?, lease_expires_at = ?, updated_at = ?,
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END
             WHERE id = (SELECT id FROM operations
                         WHERE state IN ('pending', 'running', 'rolling_back')
                           AND (lease_owner IS NULL OR lease_expires_at < ?)
                         ORDER BY created_at, id LIMIT 1)
             RETURNING id",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let op = match id {
            Some(id) => Some(load_operation(&mut tx, parse_word("operations.id", &id)?).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(op)
    }
}

impl SqliteCatalog {
    async fn shard_named(&self, name: &str) -> Result<Shard> {
        self.shards()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| CatalogError::ShardNotFound(name.to_owned()))
    }

    async fn token_where(&self, condition: &'static str, value: &str) -> Result<Option<Token>> {
        let sql = format!("SELECT * FROM api_tokens WHERE {condition}");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token).transpose()
    }
}

fn pool_entry(row: &SqliteRow) -> Result<PoolEntry> {
    let claimed: Option<String> = row.try_get("claimed_by")?;
    Ok(PoolEntry {
        id: parse_word("pool_databases.id", row.try_get("id")?)?,
        shard: row.try_get("shard")?,
        database: row.try_get("database")?,
        secret: row.try_get("secret")?,
        schema_version: row.try_get("schema_version")?,
        created_at: row.try_get("created_at")?,
        claimed_by: claimed
            .map(|c| parse_word("pool_databases.claimed_by", &c))
            .transpose()?,
        claimed_at: row.try_get("claimed_at")?,
    })
}

fn token(row: &SqliteRow) -> Result<Token> {
    Ok(Token {
        id: parse_word("api_tokens.id", row.try_get("id")?)?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn idempotent(row: &SqliteRow) -> Result<IdempotentResponse> {
    Ok(IdempotentResponse {
        key: row.try_get("key")?,
        request_hash: row.try_get("request_hash")?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).map_err(|e| {
            CatalogError::Corrupt {
                column: "idempotency_keys.status",
                problem: e.to_string(),
            }
        })?,
        body: parse_json("idempotency_keys.body", row.try_get("body")?)?,
    })
}

async fn mark_step(
    conn: &mut SqliteConnection,
    id: Uuid,
    idx: i64,
    state: StepState,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE operation_steps SET state = ?1,
             attempts = attempts + CASE WHEN ?1 = 'running' THEN 1 ELSE 0 END,
             last_error = COALESCE(?2, last_error),
             started_at = CASE WHEN ?1 = 'running' THEN ?3 ELSE started_at END,
             finished_at = CASE WHEN ?1 = 'running' THEN NULL ELSE ?3 END
         WHERE operation_id = ?4 AND idx = ?5",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(now)
    .bind(id.to_string())
    .bind(idx)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces a tenant's host names; a name another tenant has is `DomainTaken`. Runs in a
/// write (`BEGIN IMMEDIATE`) transaction: no other writer between the check and the insert.
async fn replace_domains(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    domains: &TenantDomains,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("DELETE FROM tenant_domains WHERE tenant_id = ?")
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    for domain in domains.all() {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT t.slug FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
             WHERE d.domain = ?",
        )
        .bind(domain.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(slug) = owner {
            return Err(CatalogError::DomainTaken {
                domain: domain.to_string(),
                slug,
            });
        }
        sqlx::query(
            "INSERT INTO tenant_domains (domain, tenant_id, is_primary, created_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(domain.as_str())
        .bind(tenant.to_string())
        .bind(domains.primary.as_ref() == Some(domain))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn put_secret(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
    ciphertext: &[u8],
) -> Result<()> {
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO tenant_secrets (tenant_id, name, ciphertext, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,
             updated_at = excluded.updated_at",
    )
    .bind(tenant.to_string())
    .bind(name)
    .bind(ciphertext)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_update(
    conn: &mut SqliteConnection,
    id: TenantId,
    update: &TenantUpdate,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(space) = &update.space {
        sqlx::query("UPDATE tenants SET space = ?, updated_at = ? WHERE id = ?")
            .bind(space.as_ref().map(json))
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    if let Some(version) = update.schema_version {
        sqlx::query("UPDATE tenants SET schema_version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    if let Some(failure) = &update.failure {
        sqlx::query("UPDATE tenants SET failure = ?, updated_at = ? WHERE id = ?")
            .bind(failure.as_ref().map(json))
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    if let Some(change) = &update.plan {
        sqlx::query(
            "UPDATE tenants SET plan = ?, compute = ?, placement = ?, characteristics = ?,
                 updated_at = ? WHERE id = ?",
        )
        .bind(&change.plan)
        .bind(change.placement.compute.as_str())
        .bind(json(&change.placement))
        .bind(json(&change.characteristics))
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
