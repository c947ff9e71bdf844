//! The catalog on PostgreSQL: for many `tenantry serve` processes sharing the work. It behaves
//! exactly as the SQLite catalog does (one test suite runs against both); what differs is how
//! it stays correct when several processes write at once:
//!
//! - Operations and pooled databases are claimed with `FOR UPDATE SKIP LOCKED`, so workers
//!   never block on, or take, each other's rows. Claims for one tenant run one at a time (an
//!   advisory lock on the tenant), and a tenant holds at most one pooled database per shard (a
//!   partial unique index), so a claim is idempotent even when two race.
//! - A state change locks its tenant's row (`SELECT … FOR UPDATE`) before it checks the
//!   lifecycle, so two workers cannot both move a tenant out of the same state.
//! - Writes that must not race run in one transaction (`PgCatalog::in_tx`); a transaction
//!   PostgreSQL rolled back because it lost a race (serialization failure `40001`, deadlock
//!   `40P01`, told apart by SQLSTATE) is run again from the start, a bounded number of times.
//! - Outbox rows are numbered in commit order (see `OUTBOX_LOCK`), so a relay that reads
//!   `seq > cursor` never steps over an event that commits late.
//!
//! The catalog's own migrations are recorded in `tenantry_catalog_migrations`, so a catalog
//! that shares a database with anything else never collides with its `_sqlx_migrations`.

use crate::error::{is_conflict, is_foreign_key_violation, is_unique_violation};
use crate::model::*;
use crate::store::CatalogStore;
use crate::{CatalogError, MIGRATIONS_TABLE, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Row, Transaction};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;
use tenantry_core::config::ShardConfig;
use tenantry_core::domain::{Domain, TenantDomains};
use tenantry_core::shard::ShardState;
use tenantry_core::{TenantId, TenantState};
use uuid::Uuid;

/// How many times a transaction that lost a race is run before its error is returned.
const TX_ATTEMPTS: u32 = 5;

/// The transaction-level advisory lock (two-key form, so it never meets sqlx's one-key
/// migration lock) that each transaction writing events takes just before its first event and
/// holds until it commits.
///
/// Why: `outbox.seq` comes from an identity sequence when a row is inserted, but the row only
/// becomes visible when its transaction commits. Were two transactions to commit out of number
/// order, a relay reading `seq > cursor` could see 11, move its cursor past 10, and never see
/// 10 when it commits a moment later. Under this lock numbers are handed out in commit order,
/// as SQLite's single writer does. It is held only from the first event to the commit.
const OUTBOX_LOCK: (i32, i32) = (0x7465_6e74, 0);

/// The work of one catalog transaction (see [`PgCatalog::in_tx`]).
type TxBody<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// The PostgreSQL catalog.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    pool: PgPool,
}

impl PgCatalog {
    /// Connects and migrates the catalog.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = ping_when_idle(PgPoolOptions::new())
            .max_connections(8)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(15))
            .connect(url)
            .await?;
        let mut migrator = sqlx::migrate!("migrations/postgres");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Runs `body` in one transaction and commits it. A transaction PostgreSQL rolled back as a
    /// whole because it lost a race (a serialization failure or a deadlock, by SQLSTATE) is run
    /// again from the start after a short, growing, jittered pause, up to [`TX_ATTEMPTS`] times
    /// (neon's `with_conn` in `persistence.rs`). Any other error, or returning before the
    /// commit by `?`, rolls the transaction back.
    ///
    /// `body` gets `&'c mut Transaction<'a, _>`: that type implies `'a: 'c`, which lets the
    /// boxed future borrow the caller's values (of lifetime `'a`) as well as the transaction.
    async fn in_tx<'a, T: Send>(
        &self,
        mut body: impl for<'c> FnMut(&'c mut Transaction<'a, Postgres>) -> TxBody<'c, T> + Send,
    ) -> Result<T> {
        let mut attempt = 1;
        loop {
            let outcome = async {
                let mut tx: Transaction<'a, Postgres> = self.pool.begin().await?;
                let value = body(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(e) if attempt < TX_ATTEMPTS && is_conflict(&e) => {
                    let jitter = (Uuid::new_v4().as_u128() % 10) as u64;
                    let pause = Duration::from_millis((5 << attempt) + jitter);
                    tracing::debug!(attempt, error = %e, ?pause, "catalog transaction lost a race; running it again");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl PgCatalog {
    /// A transition of tenant `id` to `to` in one statement (and round trip), if its state is
    /// one that may become `to`: the row locked and changed, the audit row, the step's
    /// checkpoint and the events, the outbox's lock taken after the row's as on the general
    /// path. `None` when nothing matched.
    async fn transition_at_once(
        &self,
        id: TenantId,
        to: TenantState,
        cause: &Cause,
        events: &[NewEvent],
        update: &TenantUpdate,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Option<Tenant>> {
        let allowed: Vec<&str> = TenantState::ALL
            .iter()
            .filter(|from| from.can_become(to))
            .map(|from| from.as_str())
            .collect();
        let sql = format!(
            "WITH current AS (
                 SELECT id, state AS from_state FROM tenants
                 WHERE id = $1 AND state = ANY($19) FOR UPDATE
             ),
             t AS (
                 UPDATE tenants SET {TENANT_SETS} FROM current WHERE tenants.id = current.id
                 RETURNING tenants.*, current.from_state
             ),
             recorded AS (
                 INSERT INTO transitions
                     (tenant_id, from_state, to_state, trigger, actor, details, at)
                 SELECT id, from_state, state, $14, $15, $16, $3 FROM t
             ),
             checkpoint AS (
                 UPDATE operation_steps SET state = 'done', finished_at = $3
                 WHERE operation_id = $17 AND idx = $18 AND EXISTS (SELECT FROM t)
             ),
             outbox_lock AS (
                 SELECT pg_advisory_xact_lock({}, {}) FROM t WHERE cardinality($20::uuid[]) > 0
             ),
             published AS (
                 INSERT INTO outbox (id, tenant_id, event_type, payload, created_at)
                 SELECT e.id, $1, e.event_type, e.payload, $3
                 FROM outbox_lock, unnest($20::uuid[], $21::text[], $22::jsonb[])
                     WITH ORDINALITY AS e (id, event_type, payload, n)
                 ORDER BY e.n
             )
             SELECT * FROM t",
            OUTBOX_LOCK.0, OUTBOX_LOCK.1
        );
        let (ids, types, payloads) = outbox_columns(events);
        let row = bind_update(
            sqlx::query(AssertSqlSafe(sql)),
            id,
            Some(to),
            update,
            Utc::now(),
        )
        .bind(&cause.trigger)
        .bind(&cause.actor)
        .bind(&cause.details)
        .bind(checkpoint.map(|cp| cp.operation))
        .bind(checkpoint.map(|cp| cp.step))
        .bind(allowed)
        .bind(ids)
        .bind(types)
        .bind(payloads)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant_from_row).transpose()
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

/// New events as the outbox's columns (fresh ids, types, payloads), for one `unnest` insert.
fn outbox_columns(events: &[NewEvent]) -> (Vec<Uuid>, Vec<&str>, Vec<&Value>) {
    (
        events.iter().map(|_| Uuid::now_v7()).collect(),
        events.iter().map(|e| e.event_type.as_str()).collect(),
        events.iter().map(|e| &e.payload).collect(),
    )
}

async fn insert_events(
    conn: &mut PgConnection,
    id: TenantId,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Taken before the rows' sequence numbers are drawn, so that the outbox's order is its
    // commit order: a row joined with the lock's cannot be inserted before the lock is held.
    let (ids, types, payloads) = outbox_columns(events);
    sqlx::query(
        "WITH outbox_lock AS (SELECT pg_advisory_xact_lock($1, $2))
         INSERT INTO outbox (id, tenant_id, event_type, payload, created_at)
         SELECT e.id, $3, e.event_type, e.payload, $4
         FROM outbox_lock, unnest($5::uuid[], $6::text[], $7::jsonb[])
             WITH ORDINALITY AS e (id, event_type, payload, n)
         ORDER BY e.n",
    )
    .bind(OUTBOX_LOCK.0)
    .bind(OUTBOX_LOCK.1)
    .bind(id.0)
    .bind(now)
    .bind(ids)
    .bind(types)
    .bind(payloads)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts operation `op` of `tenant` and its steps in one statement; the operation.
async fn insert_operation(
    conn: &mut PgConnection,
    tenant: TenantId,
    op: &NewOperation,
    now: DateTime<Utc>,
) -> Result<Operation> {
    let row = sqlx::query(
        "WITH o AS (
             INSERT INTO operations (id, tenant_id, kind, state, params, created_at, updated_at)
             VALUES ($1, $2, $3, 'pending', $4, $5, $5) RETURNING *
         ),
         steps AS (
             INSERT INTO operation_steps (operation_id, idx, name, state)
             SELECT o.id, step.idx - 1, step.name, 'pending'
             FROM o, unnest($6::text[]) WITH ORDINALITY AS step (name, idx)
             RETURNING *
         )
         SELECT o.*, (SELECT coalesce(json_agg(steps ORDER BY idx), '[]') FROM steps) AS steps
         FROM o",
    )
    .bind(op.id)
    .bind(tenant.0)
    .bind(op.kind.as_str())
    .bind(&op.params)
    .bind(now)
    .bind(&op.steps)
    .fetch_one(&mut *conn)
    .await?;
    operation_from_row(&row)
}

/// [`insert_operation`] for a tenant that may have an operation open: refused then, naming it.
async fn insert_another_operation(
    conn: &mut PgConnection,
    tenant: &Tenant,
    op: &NewOperation,
    now: DateTime<Utc>,
) -> Result<Operation> {
    // A savepoint, so that a refused insert leaves the transaction usable for the lookup.
    sqlx::query("SAVEPOINT insert_operation")
        .execute(&mut *conn)
        .await?;
    match insert_operation(conn, tenant.id, op, now).await {
        Err(CatalogError::Database(e)) if violates(&e, "operations_one_active_per_tenant") => {
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
            Err(CatalogError::OperationInProgress {
                slug: tenant.slug.clone(),
                operation: open.to_string(),
            })
        }
        other => other,
    }
}

/// An operation's columns with its steps as a JSON array, from `operations` (or a CTE of its
/// rows) named `o`: an operation and its steps in one round trip.
const OPERATION_WITH_STEPS: &str = "o.*, (SELECT coalesce(json_agg(s ORDER BY s.idx), '[]')
     FROM operation_steps s WHERE s.operation_id = o.id) AS steps";

async fn load_operation(conn: &mut PgConnection, id: Uuid) -> Result<Operation> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {OPERATION_WITH_STEPS} FROM operations o WHERE o.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| CatalogError::OperationNotFound(id.to_string()))?;
    operation_from_row(&row)
}

/// An operation from a row of [`OPERATION_WITH_STEPS`].
fn operation_from_row(row: &PgRow) -> Result<Operation> {
    Ok(Operation {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        kind: word("operations.kind", row.try_get("kind")?)?,
        state: word("operations.state", row.try_get("state")?)?,
        params: row.try_get("params")?,
        error: row.try_get("error")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        steps: from_json("operation_steps", row.try_get("steps")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// A pooled connection idle for this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pings a pooled connection before handing it out only when it sat idle for
/// [`PING_AFTER_IDLE`] or more. sqlx pings before every acquisition by default: a round trip
/// added to every catalog call, about a tenth of a millisecond each, some forty per
/// provisioning. A connection in steady use is known to be alive; one that sat idle is the one
/// a server restart or a network timeout may have cut.
fn ping_when_idle(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Lets the current transaction commit without waiting for its WAL to reach disk.
///
/// Safe for a write whose loss reads as if the worker had crashed just before it. A server crash
/// loses only the *last* such commits: the WAL is replayed as a prefix, and any later synchronous
/// commit flushes every earlier one. So a lost write is one the orchestrator already recovers
/// from — a lease taken or renewed (another worker takes the operation over sooner; a worker
/// re-checks its lease before every step), a step's mark (`running`, `done`, `failed`, `undone`:
/// the step, idempotent, runs again), a pool adoption recorded (the claim stands and the step
/// adopts again). Never for what others act on at once: transitions that publish events, pool
/// claims (two tenants must never adopt one database), requests and final outcomes.
async fn relaxed_commit(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL synchronous_commit TO off")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Replaces a tenant's host names; a name another tenant has is `DomainTaken`.
async fn replace_domains(
    conn: &mut PgConnection,
    tenant: TenantId,
    domains: &TenantDomains,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("DELETE FROM tenant_domains WHERE tenant_id = $1")
        .bind(tenant.0)
        .execute(&mut *conn)
        .await?;
    for domain in domains.all() {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT t.slug FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
             WHERE d.domain = $1",
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
        let inserted = sqlx::query(
            "INSERT INTO tenant_domains (domain, tenant_id, is_primary, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(domain.as_str())
        .bind(tenant.0)
        .bind(domains.primary.as_ref() == Some(domain))
        .bind(now)
        .execute(&mut *conn)
        .await;
        match inserted {
            // Taken by a concurrent transaction since the check.
            Err(e) if violates(&e, "tenant_domains_pkey") => {
                return Err(CatalogError::DomainTaken {
                    domain: domain.to_string(),
                    slug: "another tenant".into(),
                });
            }
            other => other?,
        };
    }
    Ok(())
}

async fn load_domains(conn: &mut PgConnection, tenant: TenantId) -> Result<TenantDomains> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT domain, is_primary FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain",
    )
    .bind(tenant.0)
    .fetch_all(&mut *conn)
    .await?;
    crate::model::to_domains(rows)
}

async fn put_secret(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    ciphertext: &[u8],
) -> Result<()> {
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks step `idx` of operation `id`. `relaxed` makes the statement's own transaction commit
/// without waiting for the WAL to be flushed (see [`relaxed_commit`]), in the same round trip:
/// for a mark written on its own, outside a transaction.
async fn mark_step<'c, E>(
    executor: E,
    id: Uuid,
    idx: i64,
    state: StepState,
    error: Option<String>,
    now: DateTime<Utc>,
    relaxed: bool,
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    sqlx::query(
        "WITH commit_mode AS (
             SELECT CASE WHEN $6 THEN set_config('synchronous_commit', 'off', true) END
         )
         UPDATE operation_steps SET state = $1,
             attempts = attempts + CASE WHEN $1 = 'running' THEN 1 ELSE 0 END,
             last_error = COALESCE($2, last_error),
             started_at = CASE WHEN $1 = 'running' THEN $3 ELSE started_at END,
             finished_at = CASE WHEN $1 = 'running' THEN NULL ELSE $3 END
         WHERE operation_id = $4 AND idx = $5 AND EXISTS (SELECT FROM commit_mode)",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(idx)
    .bind(relaxed)
    .execute(executor)
    .await?;
    Ok(())
}

/// The `SET` list of a tenant's update, one statement whatever it changes: `$1` the tenant,
/// `$2` its new state (`NULL`: unchanged), `$3` the time, `$4`–`$13` a [`TenantUpdate`]'s fields
/// (bound by [`bind_update`]).
const TENANT_SETS: &str = "state = COALESCE($2, state), updated_at = $3,
     space = CASE WHEN $4 THEN $5 ELSE space END,
     schema_version = CASE WHEN $6 THEN $7 ELSE schema_version END,
     failure = CASE WHEN $8 THEN $9 ELSE failure END,
     plan = COALESCE($10, plan), compute = COALESCE($11, compute),
     placement = COALESCE($12, placement), characteristics = COALESCE($13, characteristics)";

/// Binds `$1`–`$13` of [`TENANT_SETS`].
fn bind_update<'q>(
    query: Query<'q, Postgres, PgArguments>,
    id: TenantId,
    state: Option<TenantState>,
    update: &TenantUpdate,
    now: DateTime<Utc>,
) -> Query<'q, Postgres, PgArguments> {
    let plan = update.plan.as_ref();
    query
        .bind(id.0)
        .bind(state.map(|s| s.as_str()))
        .bind(now)
        .bind(update.space.is_some())
        .bind(update.space.clone().flatten().map(|s| to_json(&s)))
        .bind(update.schema_version.is_some())
        .bind(update.schema_version.flatten())
        .bind(update.failure.is_some())
        .bind(update.failure.clone().flatten().map(|f| to_json(&f)))
        .bind(plan.map(|c| c.plan.clone()))
        .bind(plan.map(|c| c.placement.compute.as_str()))
        .bind(plan.map(|c| to_json(&c.placement)))
        .bind(plan.map(|c| to_json(&c.characteristics)))
}

/// Applies `update` to tenant `id` in one statement; the tenant as it is now.
async fn apply_update(
    conn: &mut PgConnection,
    id: TenantId,
    update: &TenantUpdate,
    now: DateTime<Utc>,
) -> Result<Tenant> {
    let sql = format!("UPDATE tenants SET {TENANT_SETS} WHERE id = $1 RETURNING *");
    let row = bind_update(sqlx::query(AssertSqlSafe(sql)), id, None, update, now)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CatalogError::TenantNotFound(id.to_string()))?;
    tenant_from_row(&row)
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
        claimed_at: row.try_get("claimed_at")?,
    })
}

/// The entry `tenant` holds on `shard`, if any.
async fn claimed_by(
    conn: &mut PgConnection,
    shard: &str,
    tenant: TenantId,
) -> Result<Option<PoolEntry>> {
    let row = sqlx::query("SELECT * FROM pool_databases WHERE shard = $1 AND claimed_by = $2")
        .bind(shard)
        .bind(tenant.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(pool_entry).transpose()
}

/// Whether `e` is a unique violation of the named constraint or unique index (PostgreSQL
/// reports which one, so a duplicate slug is not mistaken for a duplicate id).
fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    is_unique_violation(e)
        && matches!(e, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
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
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
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
                .bind(i64::from(s.capacity))
                .bind(s.state.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
            })
        })
        .await
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
        let (new, cause, operation) = (&new, &cause, &operation);
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
                let now = Utc::now();
                // The tenant and its first transition in one statement.
                let inserted = sqlx::query(
                    "WITH t AS (
                         INSERT INTO tenants (id, slug, plan, region, state, isolation, compute,
                             shard, placement, characteristics, admin_email, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $8, $9, $10, $11, $11)
                         RETURNING *
                     ),
                     recorded AS (
                         INSERT INTO transitions
                             (tenant_id, from_state, to_state, trigger, actor, details, at)
                         SELECT id, NULL, state, $12, $13, $14, $11 FROM t
                     )
                     SELECT * FROM t",
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
                .bind(&cause.trigger)
                .bind(&cause.actor)
                .bind(&cause.details)
                .fetch_one(&mut *conn)
                .await;
                let tenant = match inserted {
                    Err(e) if violates(&e, "tenants_live_slug") => {
                        return Err(CatalogError::DuplicateSlug(new.slug.clone()));
                    }
                    other => tenant_from_row(&other?)?,
                };
                if !new.domains.is_empty() {
                    replace_domains(conn, new.id, &new.domains, now).await?;
                }
                let created = NewEvent {
                    event_type: tenantry_core::events::EventType::TenantCreated,
                    payload: serde_json::json!({
                        "tenant_id": tenant.id, "slug": tenant.slug, "plan": tenant.plan,
                        "region": tenant.region, "isolation": tenant.isolation,
                        "placement": tenant.placement,
                    }),
                };
                insert_events(conn, new.id, &[created], now).await?;
                // A new tenant has no operation open: no savepoint needed.
                let op = insert_operation(conn, tenant.id, operation, now).await?;
                Ok((tenant, op))
            })
        })
        .await
    }

    async fn tenant_by_domain(&self, domain: &Domain) -> Result<Tenant> {
        let mut conn = self.pool.acquire().await?;
        let id: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant_domains WHERE domain = $1")
                .bind(domain.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let id = id.ok_or_else(|| CatalogError::DomainNotFound(domain.to_string()))?;
        load_tenant(&mut conn, TenantId(id), false).await
    }

    async fn relocate(
        &self,
        id: TenantId,
        relocation: Option<Relocation>,
        cause: Cause,
        events: Vec<NewEvent>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Tenant> {
        let (relocation, cause, events) = (&relocation, &cause, &events);
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
                let now = Utc::now();
                let current = load_tenant(conn, id, true).await?;
                if let Some(checkpoint) = checkpoint {
                    let state: Option<String> = sqlx::query_scalar(
                        "SELECT state FROM operation_steps WHERE operation_id = $1 AND idx = $2",
                    )
                    .bind(checkpoint.operation)
                    .bind(checkpoint.step)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if state.as_deref() == Some(StepState::Done.as_str()) {
                        return Ok(current);
                    }
                }
                if let Some(r) = relocation {
                    sqlx::query(
                        "UPDATE tenants SET space = $1, shard = $2, isolation = $3,
                             placement = jsonb_set(placement, '{isolation}', to_jsonb($3::text)),
                             region = coalesce((SELECT region FROM shards WHERE name = $2), region),
                             characteristics = jsonb_set(characteristics, '{region}', to_jsonb(
                                 coalesce((SELECT region FROM shards WHERE name = $2), region))),
                             epoch = epoch + 1, updated_at = $4
                         WHERE id = $5",
                    )
                    .bind(to_json(&r.space))
                    .bind(&r.shard)
                    .bind(r.isolation.as_str())
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await?;
                }
                insert_transition(conn, id, Some(current.state), current.state, cause, now).await?;
                insert_events(conn, id, events, now).await?;
                if let Some(checkpoint) = checkpoint {
                    mark_step(
                        &mut *conn,
                        checkpoint.operation,
                        checkpoint.step,
                        StepState::Done,
                        None,
                        now,
                        false,
                    )
                    .await?;
                }
                load_tenant(conn, id, false).await
            })
        })
        .await
    }

    async fn merge_operation_params(&self, id: Uuid, patch: &serde_json::Value) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // A lost progress mark reads as an earlier one: the copy redoes a batch (see
        // `relaxed_commit`).
        relaxed_commit(&mut tx).await?;
        sqlx::query("UPDATE operations SET params = params || $1, updated_at = $2 WHERE id = $3")
            .bind(patch)
            .bind(Utc::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenant_stats(&self, tenant: TenantId) -> Result<TenantStats> {
        let row = sqlx::query("SELECT * FROM tenant_stats WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(TenantStats::default());
        };
        Ok(TenantStats {
            rows: from_json("tenant_stats.rows", r.try_get("rows")?)?,
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
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id) DO UPDATE SET rows = excluded.rows,
                 size_bytes = excluded.size_bytes, size_estimated = excluded.size_estimated,
                 collected_at = excluded.collected_at",
        )
        .bind(tenant.0)
        .bind(to_json(rows))
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
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET
                 queries = tenant_stats.queries + excluded.queries,
                 query_ms_total = tenant_stats.query_ms_total + excluded.query_ms_total,
                 queries_since = coalesce(tenant_stats.queries_since, excluded.queries_since)",
        )
        .bind(tenant.0)
        .bind(queries)
        .bind(ms)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn domains(&self, tenant: TenantId) -> Result<TenantDomains> {
        let mut conn = self.pool.acquire().await?;
        load_domains(&mut conn, tenant).await
    }

    async fn set_domains(&self, tenant: TenantId, domains: &TenantDomains) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        load_tenant(&mut tx, tenant, true).await?;
        replace_domains(&mut tx, tenant, domains, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
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

    async fn append_events(&self, tenant: TenantId, events: Vec<NewEvent>) -> Result<()> {
        let events = &events;
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
                load_tenant(conn, tenant, false).await?;
                insert_events(conn, tenant, events, Utc::now()).await
            })
        })
        .await
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Tenant> {
        let mut conn = self.pool.acquire().await?;
        apply_update(&mut conn, id, &update, Utc::now()).await
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
        // The common case in one statement; a deletion (its domains are released), a step run
        // again, a refusal or a missing tenant take the general path, which says which.
        if to != TenantState::Deleted
            && let Some(t) = self
                .transition_at_once(id, to, &cause, &events, &update, checkpoint)
                .await?
        {
            return Ok(t);
        }
        let (cause, events, update) = (&cause, &events, &update);
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
                let now = Utc::now();
                // The row lock first: a concurrent change of this tenant waits here, then sees the
                // state this one leaves. The checkpoint's state comes with it.
                let row = sqlx::query(
                    "SELECT t.*, (SELECT state FROM operation_steps
                                  WHERE operation_id = $2 AND idx = $3) AS checkpoint_state
                     FROM tenants t WHERE t.id = $1 FOR UPDATE",
                )
                .bind(id.0)
                .bind(checkpoint.map(|cp| cp.operation))
                .bind(checkpoint.map(|cp| cp.step))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| CatalogError::TenantNotFound(id.to_string()))?;
                let current = tenant_from_row(&row)?;
                let checkpoint_state: Option<String> = row.try_get("checkpoint_state")?;
                if checkpoint_state.as_deref() == Some(StepState::Done.as_str())
                    && current.state == to
                {
                    return Ok(current);
                }
                current.state.transition(to)?;
                if to == TenantState::Deleted {
                    replace_domains(conn, id, &TenantDomains::default(), now).await?;
                }
                // The change, its record and the step's checkpoint in one statement.
                let sql = format!(
                    "WITH t AS (UPDATE tenants SET {TENANT_SETS} WHERE id = $1 RETURNING *),
                     recorded AS (
                         INSERT INTO transitions
                             (tenant_id, from_state, to_state, trigger, actor, details, at)
                         SELECT id, $14, state, $15, $16, $17, $3 FROM t
                     ),
                     checkpoint AS (
                         UPDATE operation_steps SET state = 'done', finished_at = $3
                         WHERE operation_id = $18 AND idx = $19
                     )
                     SELECT * FROM t"
                );
                let row = bind_update(sqlx::query(AssertSqlSafe(sql)), id, Some(to), update, now)
                    .bind(current.state.as_str())
                    .bind(&cause.trigger)
                    .bind(&cause.actor)
                    .bind(&cause.details)
                    .bind(checkpoint.map(|cp| cp.operation))
                    .bind(checkpoint.map(|cp| cp.step))
                    .fetch_one(&mut *conn)
                    .await?;
                insert_events(conn, id, events, now).await?;
                tenant_from_row(&row)
            })
        })
        .await
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
        let mut conn = self.pool.acquire().await?;
        put_secret(&mut conn, tenant, name, ciphertext).await
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

    async fn delete_secret(&self, tenant: TenantId, name: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.0)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
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
        .await;
        match row {
            Err(err) if is_foreign_key_violation(&err) => Err(CatalogError::ShardNotFound(e.shard)),
            other => pool_entry(&other?),
        }
    }

    async fn pool_claim(&self, shard: &str, tenant: TenantId) -> Result<Option<PoolEntry>> {
        // One statement: the entry the tenant holds (its step run again), else the oldest free
        // one, skipping those other claims are taking.
        let claimed = sqlx::query(
            "WITH mine AS (
                 SELECT * FROM pool_databases WHERE shard = $3 AND claimed_by = $1
             ),
             claimed AS (
                 UPDATE pool_databases SET claimed_by = $1, claimed_at = $2
                 WHERE NOT EXISTS (SELECT FROM mine)
                   AND id = (SELECT id FROM pool_databases
                             WHERE shard = $3 AND claimed_by IS NULL
                             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING *
             )
             SELECT * FROM mine UNION ALL SELECT * FROM claimed",
        )
        .bind(tenant.0)
        .bind(Utc::now())
        .bind(shard)
        .fetch_optional(&self.pool)
        .await;
        match claimed {
            // A claim for the same tenant committed after this statement began
            // (`pool_databases_one_claim` makes it impossible to miss): that one is the tenant's.
            Err(e) if violates(&e, "pool_databases_one_claim") => {
                let mut conn = self.pool.acquire().await?;
                claimed_by(&mut conn, shard, tenant).await
            }
            other => other?.as_ref().map(pool_entry).transpose(),
        }
    }

    async fn pool_entries(&self, shard: Option<&str>) -> Result<Vec<PoolEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM pool_databases WHERE ($1::text IS NULL OR shard = $1)
             ORDER BY created_at, id",
        )
        .bind(shard)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pool_entry).collect()
    }

    async fn pool_remove(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM pool_databases WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pool_adopted(&self, adoption: PoolAdoption) -> Result<()> {
        // One statement, relaxed: lost in a crash, it reads as an adoption not yet recorded —
        // the claim stands and the step adopts (idempotently) again. See `relaxed_commit`.
        let update = TenantUpdate {
            space: Some(Some(adoption.space)),
            schema_version: Some(adoption.schema_version),
            ..TenantUpdate::default()
        };
        let sql = format!(
            "WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true)),
             t AS (UPDATE tenants SET {TENANT_SETS}
                   WHERE id = $1 AND EXISTS (SELECT FROM commit_mode) RETURNING id),
             secret AS (
                 INSERT INTO tenant_secrets (tenant_id, name, ciphertext, created_at, updated_at)
                 SELECT id, $14, $15, $3, $3 FROM t
                 ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,
                     updated_at = excluded.updated_at
             ),
             adopted AS (DELETE FROM pool_databases WHERE id = $16 AND claimed_by = $1)
             SELECT count(*) FROM t"
        );
        let tenant = adoption.tenant;
        let found: i64 = bind_update(
            sqlx::query(AssertSqlSafe(sql)),
            tenant,
            None,
            &update,
            Utc::now(),
        )
        .bind(&adoption.secret_name)
        .bind(&adoption.sealed)
        .bind(adoption.entry)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        if found == 0 {
            return Err(CatalogError::TenantNotFound(tenant.to_string()));
        }
        Ok(())
    }

    async fn infrastructure(&self, tenant: TenantId) -> Result<Option<Infrastructure>> {
        let row = sqlx::query("SELECT * FROM tenant_infrastructure WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let status: String = r.try_get("status")?;
        Ok(Some(Infrastructure {
            id: r.try_get("id")?,
            tenant_id: tenant,
            status: word("tenant_infrastructure.status", &status)?,
            tier: r.try_get("tier")?,
            cloud_provider: r.try_get("cloud_provider")?,
            region: r.try_get("region")?,
            namespace: r.try_get("namespace")?,
            configuration: r.try_get("configuration")?,
            state_key: r.try_get("state_key")?,
            plan: r.try_get("plan")?,
            outputs: r.try_get("outputs")?,
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
        let mut tx = self.pool.begin().await?;
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO tenant_infrastructure (id, tenant_id, status, tier, cloud_provider, region,
                 namespace, configuration, state_key, plan, outputs, error, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (tenant_id) DO UPDATE SET status = excluded.status, tier = excluded.tier,
                 cloud_provider = excluded.cloud_provider, region = excluded.region,
                 namespace = excluded.namespace, configuration = excluded.configuration,
                 state_key = excluded.state_key, plan = excluded.plan, outputs = excluded.outputs,
                 error = excluded.error, updated_at = excluded.updated_at",
        )
        .bind(infra.id)
        .bind(infra.tenant_id.0)
        .bind(infra.status.as_str())
        .bind(&infra.tier)
        .bind(&infra.cloud_provider)
        .bind(&infra.region)
        .bind(&infra.namespace)
        .bind(&infra.configuration)
        .bind(&infra.state_key)
        .bind(&infra.plan)
        .bind(&infra.outputs)
        .bind(&infra.error)
        .bind(infra.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(t) = transition {
            sqlx::query(
                "INSERT INTO infrastructure_transitions (id, tenant_id, from_state, to_state, trigger, details, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(infra.tenant_id.0)
            .bind(t.from.map(InfraStatus::as_str))
            .bind(t.to.as_str())
            .bind(&t.trigger)
            .bind(&t.details)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_events(&mut tx, infra.tenant_id, &events, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn infrastructure_transitions(&self, tenant: TenantId) -> Result<Vec<InfraTransition>> {
        let rows = sqlx::query(
            "SELECT * FROM infrastructure_transitions WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_state")?;
                let to: String = r.try_get("to_state")?;
                Ok(InfraTransition {
                    id: r.try_get("id")?,
                    tenant_id: tenant,
                    from: from
                        .map(|f| word("infrastructure_transitions.from_state", &f))
                        .transpose()?,
                    to: word("infrastructure_transitions.to_state", &to)?,
                    trigger: r.try_get("trigger")?,
                    details: r.try_get("details")?,
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
                status: u16::try_from(r.try_get::<i32, _>("status")?).map_err(|e| {
                    CatalogError::Corrupt {
                        column: "idempotency_keys.status",
                        problem: e.to_string(),
                    }
                })?,
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
        let op = &op;
        self.in_tx(|tx| {
            Box::pin(async move {
                let conn: &mut PgConnection = tx;
                let t = load_tenant(conn, tenant, true).await?;
                insert_another_operation(conn, &t, op, Utc::now()).await
            })
        })
        .await
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
        // One statement, relaxed (see `relaxed_commit`): a concurrent claim of the same row
        // waits for this one and then re-checks the lease condition against the row this one
        // left.
        let row = sqlx::query(AssertSqlSafe(format!(
            "WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true)),
             o AS (
                 UPDATE operations SET lease_owner = $1, lease_expires_at = $2, updated_at = $3,
                     state = CASE state WHEN 'pending' THEN 'running' ELSE state END
                 WHERE id = $4 AND state IN ('pending', 'running', 'rolling_back')
                   AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at < $3)
                   AND EXISTS (SELECT FROM commit_mode)
                 RETURNING *
             )
             SELECT {OPERATION_WITH_STEPS} FROM o"
        )))
        .bind(owner)
        .bind(until)
        .bind(Utc::now())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(operation_from_row).transpose()
    }

    async fn claim_next_operation(
        &self,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<Operation>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "WITH o AS (
                 UPDATE operations SET lease_owner = $1, lease_expires_at = $2, updated_at = $3,
                     state = CASE state WHEN 'pending' THEN 'running' ELSE state END
                 WHERE id = (SELECT id FROM operations
                             WHERE state IN ('pending', 'running', 'rolling_back')
                               AND (lease_owner IS NULL OR lease_expires_at < $3)
                             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING *
             )
             SELECT {OPERATION_WITH_STEPS} FROM o"
        )))
        .bind(owner)
        .bind(until)
        .bind(Utc::now())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(operation_from_row).transpose()
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
        // Relaxed like every lone step mark (see `relaxed_commit`), in one round trip.
        mark_step(&self.pool, id, idx, state, error, Utc::now(), true).await
    }

    async fn start_step(
        &self,
        id: Uuid,
        idx: i64,
        done: Option<i64>,
        tenant: TenantId,
    ) -> Result<Tenant> {
        // The marks (relaxed, see `relaxed_commit`) and the tenant's read in one statement and
        // round trip; a data-modifying CTE runs whether or not it is read.
        let row = sqlx::query(
            "WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true)),
             marks AS (
                 UPDATE operation_steps SET
                     state = CASE WHEN idx = $2 THEN 'running' ELSE 'done' END,
                     attempts = attempts + CASE WHEN idx = $2 THEN 1 ELSE 0 END,
                     started_at = CASE WHEN idx = $2 THEN $4 ELSE started_at END,
                     finished_at = CASE WHEN idx = $2 THEN NULL ELSE $4 END
                 WHERE operation_id = $1 AND (idx = $2 OR idx = $3)
                   AND EXISTS (SELECT FROM commit_mode)
             )
             SELECT * FROM tenants WHERE id = $5",
        )
        .bind(id)
        .bind(idx)
        .bind(done)
        .bind(Utc::now())
        .bind(tenant.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::TenantNotFound(tenant.to_string()))?;
        tenant_from_row(&row)
    }
}
