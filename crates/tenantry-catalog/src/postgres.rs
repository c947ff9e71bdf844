//! The catalog on PostgreSQL: for many `tenantry serve` processes sharing the work. Operations
//! and pooled databases are claimed with `FOR UPDATE SKIP LOCKED`, so workers never block on,
//! or take, each other's rows; a state change locks its tenant's row first.
//!
//! The catalog's own migrations are recorded in `tenantry_catalog_migrations`, so a catalog
//! that shares a database with anything else never collides with its `_sqlx_migrations`.

use crate::error::is_unique_violation;
use crate::model::*;
use crate::store::CatalogStore;
use crate::{CatalogError, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;
use tenantry_core::config::ShardConfig;
use tenantry_core::shard::ShardState;
use tenantry_core::{TenantId, TenantState};
use uuid::Uuid;

/// The PostgreSQL catalog.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    pool: PgPool,
}

impl PgCatalog {
    /// Connects and migrates the catalog.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(15))
            .connect(url)
            .await?;
        let mut migrator = sqlx::migrate!("migrations/postgres");
        migrator.dangerous_set_table_name("tenantry_catalog_migrations");
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("catalog values serialise")
}

fn from_json<T: DeserializeOwned>(column: &'static str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| CatalogError::Corrupt {
        column,
        problem: e.to_string(),
    })
}

fn word<T: FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| CatalogError::Corrupt {
        column,
        problem: e.to_string(),
    })
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant> {
    let space: Option<Value> = row.try_get("space")?;
    let failure: Option<Value> = row.try_get("failure")?;
    Ok(Tenant {
        id: TenantId(row.try_get("id")?),
        slug: row.try_get("slug")?,
        plan: row.try_get("plan")?,
        region: row.try_get("region")?,
        state: word("tenants.state", row.try_get("state")?)?,
        isolation: word("tenants.isolation", row.try_get("isolation")?)?,
        compute: word("tenants.compute", row.try_get("compute")?)?,
        shard: row.try_get("shard")?,
        placement: from_json("tenants.placement", row.try_get("placement")?)?,
        characteristics: from_json("tenants.characteristics", row.try_get("characteristics")?)?,
        space: space.map(|s| from_json("tenants.space", s)).transpose()?,
        admin_email: row.try_get("admin_email")?,
        schema_version: row.try_get("schema_version")?,
        failure: failure
            .map(|f| from_json("tenants.failure", f))
            .transpose()?,
        epoch: row.try_get("epoch")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &PgRow) -> Result<Event> {
    Ok(Event {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        event_type: word("outbox.event_type", row.try_get("event_type")?)?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

async fn load_tenant(conn: &mut PgConnection, id: TenantId, lock: bool) -> Result<Tenant> {
    let sql = if lock {
        "SELECT * FROM tenants WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT * FROM tenants WHERE id = $1"
    };
    let row = sqlx::query(sql)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CatalogError::TenantNotFound(id.to_string()))?;
    tenant_from_row(&row)
}

async fn insert_transition(
    conn: &mut PgConnection,
    id: TenantId,
    from: Option<TenantState>,
    to: TenantState,
    cause: &Cause,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO transitions (tenant_id, from_state, to_state, trigger, actor, details, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.0)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(&cause.trigger)
    .bind(&cause.actor)
    .bind(&cause.details)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_events(
    conn: &mut PgConnection,
    id: TenantId,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event_type, payload, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(id.0)
        .bind(event.event_type.as_str())
        .bind(&event.payload)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_operation(
    conn: &mut PgConnection,
    tenant: &Tenant,
    op: &NewOperation,
    now: DateTime<Utc>,
) -> Result<()> {
    // A savepoint, so that a refused insert leaves the transaction usable for the lookup.
    sqlx::query("SAVEPOINT insert_operation")
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO operations (id, tenant_id, kind, state, params, created_at, updated_at)
         VALUES ($1, $2, $3, 'pending', $4, $5, $5)",
    )
    .bind(op.id)
    .bind(tenant.id.0)
    .bind(op.kind.as_str())
    .bind(&op.params)
    .bind(now)
    .execute(&mut *conn)
    .await;
    if let Err(e) = inserted {
        if is_unique_violation(&e) {
            sqlx::query("ROLLBACK TO SAVEPOINT insert_operation")
                .execute(&mut *conn)
                .await?;
            let open: Uuid = sqlx::query_scalar(
                "SELECT id FROM operations WHERE tenant_id = $1
                 AND state IN ('pending', 'running', 'rolling_back')",
            )
            .bind(tenant.id.0)
            .fetch_one(&mut *conn)
            .await?;
            return Err(CatalogError::OperationInProgress {
                slug: tenant.slug.clone(),
                operation: open.to_string(),
            });
        }
        return Err(e.into());
    }
    for (idx, name) in op.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO operation_steps (operation_id, idx, name, state) VALUES ($1, $2, $3, 'pending')",
        )
        .bind(op.id)
        .bind(idx as i64)
        .bind(*name)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn load_operation(conn: &mut PgConnection, id: Uuid) -> Result<Operation> {
    let row = sqlx::query("SELECT * FROM operations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CatalogError::OperationNotFound(id.to_string()))?;
    let steps = sqlx::query("SELECT * FROM operation_steps WHERE operation_id = $1 ORDER BY idx")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Step {
                idx: r.try_get("idx")?,
                name: r.try_get("name")?,
                state: word("operation_steps.state", r.try_get("state")?)?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Operation {
        id,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        kind: word("operations.kind", row.try_get("kind")?)?,
        state: word("operations.state", row.try_get("state")?)?,
        params: row.try_get("params")?,
        error: row.try_get("error")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        steps,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

async fn mark_step(
    conn: &mut PgConnection,
    id: Uuid,
    idx: i64,
    state: StepState,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE operation_steps SET state = $1,
             attempts = attempts + CASE WHEN $1 = 'running' THEN 1 ELSE 0 END,
             last_error = COALESCE($2, last_error),
             started_at = CASE WHEN $1 = 'running' THEN $3 ELSE started_at END,
             finished_at = CASE WHEN $1 = 'running' THEN NULL ELSE $3 END
         WHERE operation_id = $4 AND idx = $5",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(idx)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_update(
    conn: &mut PgConnection,
    id: TenantId,
    update: &TenantUpdate,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(space) = &update.space {
        sqlx::query("UPDATE tenants SET space = $1, updated_at = $2 WHERE id = $3")
            .bind(space.as_ref().map(to_json))
            .bind(now)
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(version) = update.schema_version {
        sqlx::query("UPDATE tenants SET schema_version = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(now)
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(failure) = &update.failure {
        sqlx::query("UPDATE tenants SET failure = $1, updated_at = $2 WHERE id = $3")
            .bind(failure.as_ref().map(to_json))
            .bind(now)
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn shard_from_row(r: &PgRow) -> Result<Shard> {
    Ok(Shard {
        name: r.try_get("name")?,
        region: r.try_get("region")?,
        engine: word("shards.engine", r.try_get("engine")?)?,
        url: r.try_get("url")?,
        directory: r.try_get("directory")?,
        capacity: r.try_get::<i64, _>("capacity")? as u32,
        state: word("shards.state", r.try_get("state")?)?,
        used: r.try_get::<i64, _>("used")? as u32,
    })
}

const SHARDS: &str = "SELECT s.*, (SELECT count(*) FROM tenants t WHERE t.shard = s.name
         AND t.isolation = 'database' AND t.state <> 'deleted') AS used
     FROM shards s";

fn pool_entry(row: &PgRow) -> Result<PoolEntry> {
    let claimed: Option<Uuid> = row.try_get("claimed_by")?;
    Ok(PoolEntry {
        id: row.try_get("id")?,
        shard: row.try_get("shard")?,
        database: row.try_get("database")?,
        secret: row.try_get("secret")?,
        schema_version: row.try_get("schema_version")?,
        created_at: row.try_get("created_at")?,
        claimed_by: claimed.map(TenantId),
    })
}

fn token(row: &PgRow) -> Result<Token> {
    Ok(Token {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl PgCatalog {
    async fn shard_named(&self, name: &str) -> Result<Shard> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SHARDS} WHERE s.name = $1")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::ShardNotFound(name.to_owned()))?;
        shard_from_row(&row)
    }

    async fn token_named(&self, name: &str) -> Result<Token> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::TokenNotFound(name.to_owned()))?;
        token(&row)
    }
}

#[async_trait]
impl CatalogStore for PgCatalog {
    async fn sync_shards(&self, declared: &[ShardConfig]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = Utc::now();
        for s in declared {
            sqlx::query(
                "INSERT INTO shards (name, region, engine, url, directory, capacity, state, source, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'config', $8)
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
            .bind(s.capacity as i64)
            .bind(s.state.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn shards(&self) -> Result<Vec<Shard>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SHARDS} ORDER BY s.region, s.name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(shard_from_row).collect()
    }

    async fn add_shard(&self, s: &ShardConfig) -> Result<Shard> {
        let inserted = sqlx::query(
            "INSERT INTO shards (name, region, engine, url, directory, capacity, state, source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'runtime', $8)",
        )
        .bind(&s.name)
        .bind(&s.region)
        .bind(s.engine.as_str())
        .bind(&s.url)
        .bind(s.directory.as_ref().map(|d| d.display().to_string()))
        .bind(s.capacity as i64)
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
        let n = sqlx::query("UPDATE shards SET state = $1 WHERE name = $2")
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

    async fn create_tenant(
        &self,
        new: NewTenant,
        cause: Cause,
        operation: NewOperation,
    ) -> Result<(Tenant, Operation)> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, slug, plan, region, state, isolation, compute, shard,
                 placement, characteristics, admin_email, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(new.id.0)
        .bind(&new.slug)
        .bind(&new.characteristics.plan)
        .bind(&new.characteristics.region)
        .bind(new.placement.isolation.as_str())
        .bind(new.placement.compute.as_str())
        .bind(&new.shard)
        .bind(to_json(&new.placement))
        .bind(to_json(&new.characteristics))
        .bind(&new.admin_email)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(CatalogError::DuplicateSlug(new.slug)),
            other => other?,
        };
        let tenant = load_tenant(&mut tx, new.id, false).await?;
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

    async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant> {
        let row = sqlx::query(
            "SELECT * FROM tenants WHERE slug = $1
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
        load_tenant(&mut conn, id, false).await
    }

    async fn tenants(&self, f: &TenantFilter) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(
            "SELECT * FROM tenants
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR region = $2)
               AND ($3::text IS NULL OR isolation = $3) AND ($4::text IS NULL OR plan = $4)
               AND ($5 OR state <> 'deleted')
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
        let mut tx = self.pool.begin().await?;
        load_tenant(&mut tx, id, true).await?;
        apply_update(&mut tx, id, &update, Utc::now()).await?;
        let tenant = load_tenant(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(tenant)
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
        let mut tx = self.pool.begin().await?;
        let current = load_tenant(&mut tx, id, true).await?;
        if let Some(cp) = checkpoint {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM operation_steps WHERE operation_id = $1 AND idx = $2",
            )
            .bind(cp.operation)
            .bind(cp.step)
            .fetch_optional(&mut *tx)
            .await?;
            if state.as_deref() == Some("done") && current.state == to {
                return Ok(current);
            }
        }
        current.state.transition(to)?;
        sqlx::query("UPDATE tenants SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(now)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        apply_update(&mut tx, id, &update, now).await?;
        insert_transition(&mut tx, id, Some(current.state), to, &cause, now).await?;
        insert_events(&mut tx, id, &events, now).await?;
        if let Some(cp) = checkpoint {
            mark_step(&mut tx, cp.operation, cp.step, StepState::Done, None, now).await?;
        }
        let tenant = load_tenant(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    async fn history(&self, id: TenantId) -> Result<Vec<Transition>> {
        let rows = sqlx::query("SELECT * FROM transitions WHERE tenant_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_state")?;
                Ok(Transition {
                    id: r.try_get("id")?,
                    tenant_id: id,
                    from: from
                        .map(|f| word("transitions.from_state", &f))
                        .transpose()?,
                    to: word("transitions.to_state", r.try_get("to_state")?)?,
                    trigger: r.try_get("trigger")?,
                    actor: r.try_get("actor")?,
                    details: r.try_get("details")?,
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
            "SELECT * FROM outbox WHERE ($1::uuid IS NULL OR tenant_id = $1) AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(tenant.map(|t| t.0))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn put_secret(&self, tenant: TenantId, name: &str, ciphertext: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_secrets (tenant_id, name, ciphertext, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,
                 updated_at = excluded.updated_at",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(ciphertext)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn secret(&self, tenant: TenantId, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT ciphertext FROM tenant_secrets WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delete_secrets(&self, tenant: TenantId) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = $1")
                .bind(tenant.0)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn pool_add(&self, e: NewPoolEntry) -> Result<PoolEntry> {
        let row = sqlx::query(
            "INSERT INTO pool_databases (id, shard, database, secret, schema_version, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(Uuid::now_v7())
        .bind(&e.shard)
        .bind(&e.database)
        .bind(&e.secret)
        .bind(e.schema_version)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await?;
        pool_entry(&row)
    }

    async fn pool_claim(&self, shard: &str, tenant: TenantId) -> Result<Option<PoolEntry>> {
        let mine = sqlx::query("SELECT * FROM pool_databases WHERE shard = $1 AND claimed_by = $2")
            .bind(shard)
            .bind(tenant.0)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = mine {
            return pool_entry(&row).map(Some);
        }
        let row = sqlx::query(
            "UPDATE pool_databases SET claimed_by = $1, claimed_at = $2
             WHERE id = (SELECT id FROM pool_databases WHERE shard = $3 AND claimed_by IS NULL
                         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING *",
        )
        .bind(tenant.0)
        .bind(Utc::now())
        .bind(shard)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pool_entry).transpose()
    }

    async fn pool_remove(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM pool_databases WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pool_status(&self) -> Result<Vec<PoolCount>> {
        let rows = sqlx::query(
            "SELECT shard, count(*) FILTER (WHERE claimed_by IS NULL) AS available,
                    count(*) FILTER (WHERE claimed_by IS NOT NULL) AS claimed
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
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
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
                self.token_named(name).await
            }
        }
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token).transpose()
    }

    async fn revoke_token(&self, name: &str) -> Result<Token> {
        sqlx::query("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE name = $2")
            .bind(Utc::now())
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.token_named(name).await
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token).collect()
    }

    async fn idempotent_response(&self, key: &str) -> Result<Option<IdempotentResponse>> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(IdempotentResponse {
                key: r.try_get("key")?,
                request_hash: r.try_get("request_hash")?,
                status: r.try_get::<i32, _>("status")? as u16,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    async fn save_idempotent_response(&self, r: IdempotentResponse) -> Result<IdempotentResponse> {
        sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&r.key)
        .bind(&r.request_hash)
        .bind(i32::from(r.status))
        .bind(&r.body)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(self.idempotent_response(&r.key).await?.unwrap_or(r))
    }

    async fn sink_cursor(&self, sink: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT seq FROM sink_cursors WHERE sink = $1")
                .bind(sink)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    async fn set_sink_cursor(&self, sink: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sink_cursors (sink, seq, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (sink) DO UPDATE SET seq = greatest(sink_cursors.seq, excluded.seq),
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
            "INSERT INTO dead_letters (sink, seq, error, attempts, at) VALUES ($1, $2, $3, $4, $5)
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

    async fn create_operation(&self, tenant: TenantId, op: NewOperation) -> Result<Operation> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let t = load_tenant(&mut tx, tenant, true).await?;
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
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE ($1::uuid IS NULL OR tenant_id = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(tenant.map(|t| t.0))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(load_operation(&mut conn, id).await?);
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
        let claimed = sqlx::query(
            "UPDATE operations SET lease_owner = $1, lease_expires_at = $2, updated_at = $3,
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END
             WHERE id = $4 AND state IN ('pending', 'running', 'rolling_back')
               AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at < $3)",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        self.operation(id).await.map(Some)
    }

    async fn claim_next_operation(
        &self,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>> {
        let now = Utc::now();
        let id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE operations SET lease_owner = $1, lease_expires_at = $2, updated_at = $3,
                 state = CASE state WHEN 'pending' THEN 'running' ELSE state END
             WHERE id = (SELECT id FROM operations
                         WHERE state IN ('pending', 'running', 'rolling_back')
                           AND (lease_owner IS NULL OR lease_expires_at < $3)
                         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => self.operation(id).await.map(Some),
            None => Ok(None),
        }
    }

    async fn claimable_operations(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM operations WHERE state IN ('pending', 'running', 'rolling_back')
               AND (lease_owner IS NULL OR lease_expires_at < $1)
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
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
            "UPDATE operations SET state = $1, error = COALESCE($2, error), updated_at = $3,
                 finished_at = $4,
                 lease_owner = CASE WHEN $5 THEN NULL ELSE lease_owner END,
                 lease_expires_at = CASE WHEN $5 THEN NULL ELSE lease_expires_at END
             WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(now)
        .bind(finished)
        .bind(finished.is_some())
        .bind(id)
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
}
