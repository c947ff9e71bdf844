//! Moving one tenant's rows from a PostgreSQL space to another while the tenant keeps writing:
//! the building blocks of a live move (shared → schema → database, across servers).
//!
//! - **Capture**: a row trigger on every tenant table of the source logs each change of a tenant
//!   under move (`tenantry_move_changes`: table, operation, old and new row as JSON) — from any
//!   writer, not only through a router. After registering the tenant, capture waits until every
//!   transaction that began earlier has ended: one of those could otherwise commit rows the
//!   copy does not see and the trigger did not log.
//! - **Copy**: the tenant's rows, table by table (parents first), in batches by primary key,
//!   each a binary `COPY … TO STDOUT` of the source and `COPY … FROM STDIN` of the target (a
//!   batch copied before, after a crash, goes through a temporary table and `INSERT … ON
//!   CONFLICT DO NOTHING` instead); the last key copied is the caller's
//!   checkpoint, so a copy resumes where it stopped. Rows land with
//!   `session_replication_role = replica` (foreign keys are checked by the verification
//!   instead: a child may arrive before the parent the change log brings).
//! - **Catch-up**: the logged changes, in order, applied to the target as upserts and deletes,
//!   then removed from the log — applying a batch twice (after a crash) gives the same rows.
//! - **Pause**: writers of the tenant take a shared advisory lock on its key in the capture
//!   trigger; the mover takes it exclusively, which refuses new writes of that tenant at once
//!   and waits for those in flight to commit. Other tenants of a shared table never wait.
//! - **Checksums**: per table, the tenant's row count and an order-independent sum of row
//!   hashes, compared between source and target at one point: in full at a snapshot of the
//!   source while the tenant keeps writing (the target once exactly the changes that snapshot
//!   saw are applied), then, while writes are paused, only the rows the changes applied since
//!   touched — so the pause does not grow with the tenant.
//! - **No schema changes meanwhile**: a copy, the change log and the checksums assume both
//!   sides keep the shape they had, so an event trigger ([`DDL_GUARD`], at the end of every DDL
//!   command and on every drop) refuses, from anyone, a schema change that touches a schema with
//!   tenants under move (SQLSTATE 55006, naming them and what ends the move); only the mover's
//!   own capture set-up passes, with `tenantry.move_ddl` set for its transaction. It stays
//!   installed, and costs a lookup per DDL command, once a database has seen a move.

use super::connections::SpaceConn;
use super::introspect::tenant_tables;
use super::spaces::PgSpaces;
use super::sql::{exec, lock_key};
use crate::driver::{Credentials, SpaceDriver};
use crate::error::{Result, SpaceError};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tenantry_core::ident::quote;
use tenantry_core::space::Space;
use tenantry_core::{Isolation, TenantId};

/// The change log of tenants under move (in the source schema) and the tenants under move in
/// this schema (`paused` once a move switched away from it): named alike on every engine.
pub use crate::moves::{CHANGES, MOVING};
/// The engine-neutral parts of a move, kept reachable where they always were.
pub use crate::moves::{MoveTable, TableChecksum, key_ranges};
/// The capture trigger (and its function).
pub const CAPTURE: &str = "tenantry_capture";
/// The event trigger (and its function, in `public`) that refuses schema changes in a schema
/// with tenants under move.
pub const DDL_GUARD: &str = "tenantry_move_ddl_guard";
/// The setting with which the mover's own schema changes (capture set-up) pass the guard.
const MOVE_DDL: &str = "tenantry.move_ddl";
/// SQLSTATE `object_in_use`, which the guard raises.
pub const SCHEMA_CHANGE_REFUSED: &str = "55006";

/// The settings that carry a copy batch's tenant and bounds into its `COPY` statement.
const COPY_TENANT: &str = "tenantry.copy_tenant";
const COPY_AFTER: &str = "tenantry.copy_after";
const COPY_LAST: &str = "tenantry.copy_last";
/// The temporary table a copy batch lands in on the target.
const COPY_TABLE: &str = "tenantry_copy_batch";

/// How long capture waits for older transactions to end, and a pause for writers in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a tenant's rows go: from a space of this driver's shard to `target` on `to`.
#[derive(Clone, Copy)]
pub struct MoveRoute<'a> {
    pub tenant: TenantId,
    pub source: &'a Space,
    pub to: &'a PgSpaces,
    pub target: &'a Space,
}

/// One logged change.
#[derive(sqlx::FromRow)]
struct Change {
    seq: i64,
    table_name: String,
    op: String,
    old_row: Option<Value>,
    new_row: Option<Value>,
}

/// Which logged changes to apply.
enum Logged<'a> {
    /// The oldest, at most this many.
    Next(i64),
    /// Exactly these.
    Listed(&'a [i64]),
}

/// Logged changes applied per round trip when they are listed.
const LISTED_BATCH: usize = 500;

/// The keys of the rows that applied changes touched, per table (both a row's old and new key,
/// should a change move it).
#[derive(Debug, Default)]
pub struct TouchedKeys(BTreeMap<String, BTreeMap<String, Value>>);

impl TouchedKeys {
    fn note(&mut self, table: &MoveTable, change: &Change) {
        let keys = self.0.entry(table.name.clone()).or_default();
        for row in [&change.old_row, &change.new_row].into_iter().flatten() {
            let key = Value::Object(
                table
                    .key
                    .iter()
                    .map(|k| (k.clone(), row[k].clone()))
                    .collect(),
            );
            keys.insert(key.to_string(), key);
        }
    }

    fn keys(&self, table: &str) -> Option<Value> {
        self.0
            .get(table)
            .map(|keys| Value::Array(keys.values().cloned().collect()))
    }

    /// How many rows were touched, over all tables.
    pub fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key under which writers of `tenant` hold a shared advisory lock.
fn write_lock(tenant: TenantId) -> i64 {
    lock_key(&format!("tenantry/move/{tenant}"))
}

fn capture_function(schema: &str) -> Result<String> {
    let schema = quote(schema)?;
    Ok(format!(
        "CREATE OR REPLACE FUNCTION {schema}.{CAPTURE}() RETURNS trigger
         LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_catalog AS $f$
         DECLARE
           tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
           stopped boolean;
         BEGIN
           SELECT m.paused INTO stopped FROM {MOVING} m WHERE m.tenant_id = tenant;
           IF NOT FOUND THEN
             RETURN NULL;
           END IF;
           IF stopped OR NOT pg_try_advisory_xact_lock_shared(
                ('x' || substr(encode(sha256(convert_to('tenantry/move/' || tenant, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint) THEN
             RAISE EXCEPTION 'tenant % is being moved: its writes are paused for a moment, retry', tenant
               USING ERRCODE = '55P03';
           END IF;
           INSERT INTO {CHANGES} (tenant_id, table_name, op, old_row, new_row)
           VALUES (tenant, TG_TABLE_NAME, left(TG_OP, 1),
                   CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                   CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
           RETURN NULL;
         END $f$"
    ))
}

/// Holds a tenant's writes on a source space paused (see the module doc) until released.
pub struct WritePause {
    conn: SpaceConn,
    key: i64,
    tenant: String,
}

impl WritePause {
    /// Lets writes through again — or, with `keep_refusing`, marks the tenant as moved away so
    /// that the old place refuses its writes for good (until the move is rolled back).
    pub async fn release(mut self, keep_refusing: bool) -> Result<()> {
        if keep_refusing {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {MOVING} SET paused = true WHERE tenant_id = $1"
            )))
            .bind(&self.tenant)
            .execute(&mut *self.conn)
            .await?;
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut *self.conn)
            .await?;
        self.conn.close().await
    }
}

impl PgSpaces {
    /// What tells this shard's server apart from every other: its cluster's system identifier
    /// and the moment its postmaster started. Two shards declared on one server give the same.
    pub async fn server_identity(&self) -> Result<String> {
        Ok(sqlx::query_scalar(
            "SELECT (SELECT system_identifier FROM pg_control_system())::text
                    || '@' || pg_postmaster_start_time()::text",
        )
        .fetch_one(self.admin().await)
        .await?)
    }

    /// Creates `space`, a database of the tenant's own, reached with `credentials`: those of
    /// the tenant's database on another server, so that one sealed secret serves both ends of
    /// a move between servers (a role belongs to one server; its name is the database's).
    /// Idempotent.
    pub async fn create_with_credentials(
        &self,
        space: &Space,
        credentials: &Credentials,
    ) -> Result<()> {
        let database = match (space.kind, space.database.as_deref()) {
            (Isolation::Database, Some(database)) if database == credentials.role => database,
            _ => {
                return Err(SpaceError::BadSpace(format!(
                    "credentials of role {} cannot reach space {space:?}: only a database of the tenant's own, of the role's name, takes them",
                    credentials.role
                )));
            }
        };
        // Created with a fresh password, then given the one that reaches the other end.
        self.create(space).await?;
        super::roles::ensure_login_role_with(self.admin().await, credentials, database).await
    }

    /// The tenant tables of `space` as a move copies them: parents first, with their keys.
    /// A table without a primary key cannot be copied in batches: an error names it.
    pub async fn move_tables(&self, space: &Space) -> Result<Vec<MoveTable>> {
        let mut conn = self.open_space(space).await?;
        let mut tables = tenant_tables(&mut conn).await?;
        tables.reverse();
        let mut out = Vec::with_capacity(tables.len());
        for name in tables {
            let q = quote(&name)?;
            let key: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = $1::regclass AND i.indisprimary
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
            )
            .bind(&q)
            .fetch_all(&mut *conn)
            .await?;
            if key.is_empty() {
                return Err(SpaceError::BadSpace(format!(
                    "table {name} has no primary key: a move copies rows in batches by key"
                )));
            }
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT attname::text FROM pg_attribute
                 WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                 ORDER BY attnum",
            )
            .bind(&q)
            .fetch_all(&mut *conn)
            .await?;
            out.push(MoveTable { name, key, columns });
        }
        self.release_space(space, conn);
        Ok(out)
    }

    /// Starts logging the tenant's changes in `space` (idempotent), then waits until every
    /// transaction older than the registration has ended.
    ///
    /// Creating a trigger locks its table against writes for a moment; writers that hold one
    /// table and want the next can deadlock with it. So the set-up waits at most a second for
    /// each lock (never stalling the writers queued behind it for longer) and starts over when
    /// it loses a deadlock or a wait.
    pub async fn start_capture(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let mut conn = self.open_space(space).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match install_capture(&mut conn, space, tenant).await {
                Ok(()) => break,
                Err(e) if attempt < 20 && e.has_code(&["40P01", "55P03"]) => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let registered: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *conn)
            .await?;
        wait_for_older_transactions(&mut conn, registered).await?;
        self.release_space(space, conn);
        Ok(())
    }

    /// Stops logging the tenant's changes and forgets those logged; the trigger goes when no
    /// tenant of the schema is under move any more (retried like [`Self::start_capture`]).
    pub async fn stop_capture(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let Some(mut conn) = self.open_existing_space(space).await? else {
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match remove_capture(&mut conn, tenant).await {
                Ok(()) => break,
                Err(e) if attempt < 20 && e.has_code(&["40P01", "55P03"]) => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.release_space(space, conn);
        Ok(())
    }

    /// Pauses the tenant's writes on `space`: new ones are refused at once, those in flight
    /// are waited for (at most [`DRAIN_TIMEOUT`]).
    pub async fn pause_writes(&self, space: &Space, tenant: TenantId) -> Result<WritePause> {
        let mut conn = self.open_space(space).await?;
        let key = write_lock(tenant);
        exec(
            &mut *conn,
            format!("SET lock_timeout = '{}s'", DRAIN_TIMEOUT.as_secs()),
        )
        .await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(WritePause {
            conn,
            key,
            tenant: tenant.to_string(),
        })
    }

    /// Copies up to `limit` of the tenant's rows of `table` after key `after` (none: from the
    /// start) along `route`, as a binary `COPY` out of the source and into the target (through
    /// a temporary table when the batch was copied before: a retry adds nothing). Returns
    /// how many rows were copied and the last key of the batch (`None` when the table is done).
    pub async fn copy_batch(
        &self,
        route: MoveRoute<'_>,
        table: &MoveTable,
        after: Option<&Value>,
        limit: i64,
    ) -> Result<(usize, Option<Value>)> {
        let q = quote(&table.name)?;
        let key = key_list(&table.key)?;
        // COPY takes no parameters: the tenant and the bounds travel as settings of the
        // transaction, never spliced into the statement.
        let bound = |setting: &str| {
            format!(
                "(SELECT {key} FROM jsonb_populate_record(null::{q}, current_setting('{setting}')::jsonb))"
            )
        };
        let after_cond = match after {
            None => String::new(),
            Some(_) => format!("AND ({key}) > {}", bound(COPY_AFTER)),
        };
        let in_batch =
            format!("FROM {q} WHERE tenant_id = current_setting('{COPY_TENANT}') {after_cond}");
        let mut source = self.open_space(route.source).await?;
        let mut tx = source.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "SELECT set_config('{COPY_TENANT}', $1, true), set_config('{COPY_AFTER}', $2, true)"
        )))
        .bind(route.tenant.to_string())
        .bind(after.map(Value::to_string).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        let last: Option<Value> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT to_jsonb(k) FROM (SELECT {key} {in_batch} ORDER BY {key} LIMIT $1) k
             ORDER BY {} LIMIT 1",
            descending(&table.key)?
        )))
        .bind(limit)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            tx.commit().await?;
            self.release_space(route.source, source);
            return Ok((0, None));
        };
        sqlx::query(AssertSqlSafe(format!(
            "SELECT set_config('{COPY_LAST}', $1, true)"
        )))
        .bind(last.to_string())
        .execute(&mut *tx)
        .await?;
        let rows: Vec<u8> = {
            let mut stream = tx
                .copy_out_raw(&format!(
                    "COPY (SELECT * {in_batch} AND ({key}) <= {}) TO STDOUT (FORMAT binary)",
                    bound(COPY_LAST)
                ))
                .await?;
            let mut rows = Vec::new();
            while let Some(chunk) = stream.try_next().await? {
                rows.extend_from_slice(&chunk);
            }
            rows
        };
        tx.commit().await?;
        self.release_space(route.source, source);

        let mut target = route.to.open_space(route.target).await?;
        let mut tx = target.begin().await?;
        exec(
            &mut *tx,
            "SET LOCAL session_replication_role = replica".into(),
        )
        .await?;
        // Straight into the table: the target holds none of a batch's rows unless this batch
        // was copied before (a retry after a crash), and then the key conflict sends it the
        // idempotent way, through a temporary table.
        exec(&mut *tx, "SAVEPOINT tenantry_copy".into()).await?;
        let copied = match copy_in(&mut tx, &q, &rows).await {
            Ok(copied) => copied,
            Err(e) if e.has_code(&[UNIQUE_VIOLATION]) => {
                exec(&mut *tx, "ROLLBACK TO SAVEPOINT tenantry_copy".into()).await?;
                exec(
                    &mut *tx,
                    format!("CREATE TEMPORARY TABLE {COPY_TABLE} (LIKE {q}) ON COMMIT DROP"),
                )
                .await?;
                let copied = copy_in(&mut tx, COPY_TABLE, &rows).await?;
                exec(
                    &mut *tx,
                    format!(
                        "INSERT INTO {q} OVERRIDING SYSTEM VALUE SELECT * FROM {COPY_TABLE} ON CONFLICT DO NOTHING"
                    ),
                )
                .await?;
                copied
            }
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        route.to.release_space(route.target, target);
        Ok((copied as usize, Some(last)))
    }

    /// Applies up to `limit` logged changes of the tenant, oldest first, along `route`, and
    /// removes them from the log. Returns how many were applied (0: caught up).
    pub async fn apply_changes(
        &self,
        route: MoveRoute<'_>,
        tables: &[MoveTable],
        limit: i64,
    ) -> Result<usize> {
        self.apply_logged(route, tables, Logged::Next(limit), None)
            .await
    }

    /// [`Self::apply_changes`], noting the keys of the rows the changes touched.
    pub async fn apply_changes_noting(
        &self,
        route: MoveRoute<'_>,
        tables: &[MoveTable],
        limit: i64,
        touched: &mut TouchedKeys,
    ) -> Result<usize> {
        self.apply_logged(route, tables, Logged::Next(limit), Some(touched))
            .await
    }

    /// Applies exactly the logged changes numbered `seqs` (those a snapshot saw), oldest first.
    pub async fn apply_listed_changes(
        &self,
        route: MoveRoute<'_>,
        tables: &[MoveTable],
        seqs: &[i64],
    ) -> Result<usize> {
        let mut applied = 0;
        for chunk in seqs.chunks(LISTED_BATCH) {
            applied += self
                .apply_logged(route, tables, Logged::Listed(chunk), None)
                .await?;
        }
        Ok(applied)
    }

    async fn apply_logged(
        &self,
        route: MoveRoute<'_>,
        tables: &[MoveTable],
        which: Logged<'_>,
        mut touched: Option<&mut TouchedKeys>,
    ) -> Result<usize> {
        let mut conn = self.open_space(route.source).await?;
        let columns = "seq, table_name, op, old_row, new_row";
        let changes: Vec<Change> = match which {
            Logged::Next(limit) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {CHANGES} WHERE tenant_id = $1 ORDER BY seq LIMIT $2"
                )))
                .bind(route.tenant.to_string())
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
            }
            Logged::Listed(seqs) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {CHANGES}
                     WHERE tenant_id = $1 AND seq = ANY($2) ORDER BY seq"
                )))
                .bind(route.tenant.to_string())
                .bind(seqs)
                .fetch_all(&mut *conn)
                .await?
            }
        };
        if changes.is_empty() {
            self.release_space(route.source, conn);
            return Ok(0);
        }
        let mut target_conn = route.to.open_space(route.target).await?;
        let mut tx = target_conn.begin().await?;
        exec(
            &mut *tx,
            "SET LOCAL session_replication_role = replica".into(),
        )
        .await?;
        for change in &changes {
            let table = tables
                .iter()
                .find(|t| t.name == change.table_name)
                .ok_or_else(|| {
                    SpaceError::BadSpace(format!(
                        "a change of table {}, which the move does not know: was the schema changed during the move?",
                        change.table_name
                    ))
                })?;
            apply_change(&mut tx, table, change).await?;
            if let Some(touched) = touched.as_deref_mut() {
                touched.note(table, change);
            }
        }
        tx.commit().await?;
        route.to.release_space(route.target, target_conn);
        let applied: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {CHANGES} WHERE seq = ANY($1)"
        )))
        .bind(&applied)
        .execute(&mut *conn)
        .await?;
        self.release_space(route.source, conn);
        Ok(applied.len())
    }

    /// The tenant's per-table checksums and the numbers of its logged changes, both as of one
    /// snapshot: the source's rows then equal the target's once exactly those changes are
    /// applied to it. The full comparison of a move, taken while the tenant keeps writing.
    pub async fn snapshot_checksums(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<(Vec<TableChecksum>, Vec<i64>)> {
        let mut conn = self.open_space(space).await?;
        let mut tx = conn.begin().await?;
        exec(
            &mut *tx,
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY".into(),
        )
        .await?;
        let seen: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT seq FROM {CHANGES} WHERE tenant_id = $1 ORDER BY seq"
        )))
        .bind(tenant.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            out.push(table_checksum(&mut tx, tenant, table, None).await?);
        }
        tx.commit().await?;
        self.release_space(space, conn);
        Ok((out, seen))
    }

    /// Per table with touched rows, the count and checksum of the tenant's rows under those
    /// keys: with the full comparison at a snapshot, the rows changed since are all there is
    /// left to compare, however large the tenant.
    pub async fn touched_checksums(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
        touched: &TouchedKeys,
    ) -> Result<Vec<TableChecksum>> {
        let mut conn = self.open_space(space).await?;
        let mut out = Vec::new();
        for table in tables {
            if let Some(keys) = touched.keys(&table.name) {
                out.push(table_checksum(&mut conn, tenant, table, Some(keys)).await?);
            }
        }
        self.release_space(space, conn);
        Ok(out)
    }

    /// The tenant's rows in all of `tables`.
    pub async fn count_rows(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<i64> {
        let mut conn = self.open_space(space).await?;
        let mut total = 0;
        for table in tables {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {} WHERE tenant_id = $1",
                quote(&table.name)?
            )))
            .bind(tenant.to_string())
            .fetch_one(&mut *conn)
            .await?;
            total += n;
        }
        self.release_space(space, conn);
        Ok(total)
    }

    /// Per table, the tenant's row count and an order-independent checksum of its rows.
    pub async fn checksums(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<Vec<TableChecksum>> {
        let mut conn = self.open_space(space).await?;
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            out.push(table_checksum(&mut conn, tenant, table, None).await?);
        }
        self.release_space(space, conn);
        Ok(out)
    }

    /// Every one of the tenant's rows of `table` as its key (JSON text) and a hash of the row,
    /// in key order: what [`key_ranges`] compares to say where two sides differ.
    pub async fn row_hashes(
        &self,
        space: &Space,
        tenant: TenantId,
        table: &MoveTable,
    ) -> Result<Vec<(String, String)>> {
        let q = quote(&table.name)?;
        let key = key_list(&table.key)?;
        let of_t = table
            .key
            .iter()
            .map(|k| quote(k).map(|k| format!("t.{k}")))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        let mut conn = self.open_space(space).await?;
        let rows = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT (SELECT to_jsonb(k) FROM (SELECT {of_t}) k)::text, md5(t::text)
             FROM {q} t WHERE tenant_id = $1 ORDER BY {key}"
        )))
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await?;
        self.release_space(space, conn);
        Ok(rows)
    }

    /// Sets each sequence owned by a column of `tables` in `space` past the largest value of
    /// its column, so that new rows after a move never collide with moved ones.
    pub async fn advance_sequences(&self, space: &Space, tables: &[MoveTable]) -> Result<()> {
        let mut conn = self.open_space(space).await?;
        for table in tables {
            let q = quote(&table.name)?;
            for column in &table.columns {
                let sequence: Option<String> =
                    sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                        .bind(&q)
                        .bind(column)
                        .fetch_one(&mut *conn)
                        .await?;
                if let Some(sequence) = sequence {
                    sqlx::query(AssertSqlSafe(format!(
                        "SELECT setval($1, greatest((SELECT max({}) FROM {q}), 1))",
                        quote(column)?
                    )))
                    .bind(sequence)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        self.release_space(space, conn);
        Ok(())
    }
}

/// The change log, the trigger on every tenant table, and the tenant registered, in one
/// transaction.
async fn install_capture(conn: &mut PgConnection, space: &Space, tenant: TenantId) -> Result<()> {
    let schema = space.schema.as_deref().unwrap_or("public");
    let mut tx = conn.begin().await?;
    exec(&mut *tx, "SET LOCAL lock_timeout = '1s'".into()).await?;
    exec(&mut *tx, format!("SET LOCAL {MOVE_DDL} = 'on'")).await?;
    // One capture set-up per schema at a time.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&format!("tenantry/capture/{schema}")))
        .execute(&mut *tx)
        .await?;
    exec(
        &mut *tx,
        format!(
            "CREATE TABLE IF NOT EXISTS {MOVING} (
               tenant_id text PRIMARY KEY, paused boolean NOT NULL DEFAULT false)"
        ),
    )
    .await?;
    exec(
        &mut *tx,
        format!(
            "CREATE TABLE IF NOT EXISTS {CHANGES} (
               seq bigserial PRIMARY KEY, tenant_id text NOT NULL, table_name text NOT NULL,
               op text NOT NULL, old_row jsonb, new_row jsonb)"
        ),
    )
    .await?;
    exec(&mut *tx, capture_function(schema)?).await?;
    for sql in ddl_guard() {
        exec(&mut *tx, sql).await?;
    }
    for table in &tenant_tables(&mut tx).await? {
        let has: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)",
        )
        .bind(quote(table)?)
        .bind(CAPTURE)
        .fetch_one(&mut *tx)
        .await?;
        if !has {
            exec(
                &mut *tx,
                format!(
                    "CREATE TRIGGER {CAPTURE} AFTER INSERT OR UPDATE OR DELETE ON {}
                     FOR EACH ROW EXECUTE FUNCTION {CAPTURE}()",
                    quote(table)?
                ),
            )
            .await?;
        }
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {MOVING} (tenant_id) VALUES ($1)
         ON CONFLICT (tenant_id) DO UPDATE SET paused = false"
    )))
    .bind(tenant.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The guard's functions and event triggers (see the module doc), created once per database.
fn ddl_guard() -> [String; 4] {
    [
        format!(
            "CREATE OR REPLACE FUNCTION public.tenantry_moving_in(schema_name text) RETURNS text
             LANGUAGE plpgsql STABLE AS $f$
             DECLARE tenants text;
             BEGIN
               IF to_regclass(format('%I.{MOVING}', schema_name)) IS NULL THEN
                 RETURN NULL;
               END IF;
               EXECUTE format('SELECT string_agg(tenant_id, '', '' ORDER BY tenant_id) FROM %I.{MOVING}', schema_name)
                 INTO tenants;
               RETURN tenants;
             END $f$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION public.{DDL_GUARD}() RETURNS event_trigger
             LANGUAGE plpgsql AS $f$
             DECLARE
               schemas text[];
               touched text;
               tenants text;
             BEGIN
               IF current_setting('{MOVE_DDL}', true) = 'on' THEN
                 RETURN;
               END IF;
               IF TG_EVENT = 'sql_drop' THEN
                 SELECT array_agg(DISTINCT schema_name) INTO schemas
                   FROM pg_event_trigger_dropped_objects() WHERE schema_name IS NOT NULL;
               ELSE
                 SELECT array_agg(DISTINCT schema_name) INTO schemas
                   FROM pg_event_trigger_ddl_commands() WHERE schema_name IS NOT NULL;
               END IF;
               FOREACH touched IN ARRAY coalesce(schemas, '{{}}')
               LOOP
                 tenants := public.tenantry_moving_in(touched);
                 IF tenants IS NOT NULL THEN
                   RAISE EXCEPTION '% refused: schema % holds tenants being moved (%), whose copies must keep their shape; end the move first (tenantry tenant move SLUG --complete or --rollback, or --cancel before its switch), then run the change again', TG_TAG, touched, tenants
                     USING ERRCODE = '{SCHEMA_CHANGE_REFUSED}';
                 END IF;
               END LOOP;
             END $f$"
        ),
        guard_trigger("ddl_command_end"),
        guard_trigger("sql_drop"),
    ]
}

/// Creates the guard's event trigger on `event` unless it exists.
fn guard_trigger(event: &str) -> String {
    format!(
        "DO $d$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '{DDL_GUARD}_{event}') THEN
             CREATE EVENT TRIGGER {DDL_GUARD}_{event} ON {event}
               EXECUTE FUNCTION public.{DDL_GUARD}();
           END IF;
         END $d$"
    )
}

/// The tenant's registration and logged changes gone, and the triggers when it was the last.
async fn remove_capture(conn: &mut PgConnection, tenant: TenantId) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MOVING)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    exec(&mut *tx, "SET LOCAL lock_timeout = '1s'".into()).await?;
    exec(&mut *tx, format!("SET LOCAL {MOVE_DDL} = 'on'")).await?;
    for sql in [
        format!("DELETE FROM {MOVING} WHERE tenant_id = $1"),
        format!("DELETE FROM {CHANGES} WHERE tenant_id = $1"),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let others: bool = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {MOVING})"
    )))
    .fetch_one(&mut *tx)
    .await?;
    if !others {
        for table in tenant_tables(&mut tx).await? {
            exec(
                &mut *tx,
                format!("DROP TRIGGER IF EXISTS {CAPTURE} ON {}", quote(&table)?),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The count and order-independent checksum (a sum of row hashes) of the tenant's rows of
/// `table` — of those under `keys` (a JSON array of key objects) when given.
async fn table_checksum(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &MoveTable,
    keys: Option<Value>,
) -> Result<TableChecksum> {
    let q = quote(&table.name)?;
    let only = match keys {
        None => String::new(),
        Some(_) => {
            let key = key_list(&table.key)?;
            format!("AND ({key}) IN (SELECT {key} FROM jsonb_populate_recordset(null::{q}, $2))")
        }
    };
    let mut query = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text
         FROM {q} t WHERE tenant_id = $1 {only}"
    )))
    .bind(tenant.to_string());
    if let Some(keys) = keys {
        query = query.bind(keys);
    }
    let (rows, checksum): (i64, String) = query.fetch_one(&mut *conn).await?;
    Ok(TableChecksum {
        table: table.name.clone(),
        rows,
        checksum,
    })
}

/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// Copies a binary `COPY` stream into `table` (quoted) of the connection's transaction.
async fn copy_in(conn: &mut PgConnection, table: &str, rows: &[u8]) -> Result<u64> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await?;
    copy.send(rows).await?;
    Ok(copy.finish().await?)
}

/// `"a" DESC, "b" DESC` for a key's columns.
fn descending(key: &[String]) -> Result<String> {
    Ok(key
        .iter()
        .map(|k| quote(k).map(|q| format!("{q} DESC")))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// `"a", "b"` for a key's columns.
fn key_list(key: &[String]) -> Result<String> {
    Ok(key
        .iter()
        .map(|k| quote(k))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

async fn apply_change(conn: &mut PgConnection, table: &MoveTable, change: &Change) -> Result<()> {
    let (old_row, new_row) = (change.old_row.as_ref(), change.new_row.as_ref());
    let q = quote(&table.name)?;
    let key = key_list(&table.key)?;
    let delete = |row: &Value| {
        let sql = format!(
            "DELETE FROM {q} WHERE ({key}) = (SELECT {key} FROM jsonb_populate_record(null::{q}, $1))"
        );
        (sql, row.clone())
    };
    let bad = || SpaceError::BadSpace(format!("a malformed change of table {}", table.name));
    match change.op.as_str() {
        "D" => {
            let (sql, row) = delete(old_row.ok_or_else(bad)?);
            sqlx::query(AssertSqlSafe(sql))
                .bind(row)
                .execute(&mut *conn)
                .await?;
        }
        "I" | "U" => {
            let new_row = new_row.ok_or_else(bad)?;
            // A changed key: the row under its old key goes first.
            if let Some(old_row) = old_row
                && table.key.iter().any(|k| old_row[k] != new_row[k])
            {
                let (sql, row) = delete(old_row);
                sqlx::query(AssertSqlSafe(sql))
                    .bind(row)
                    .execute(&mut *conn)
                    .await?;
            }
            let others: Vec<String> = table
                .columns
                .iter()
                .filter(|c| !table.key.contains(c))
                .map(|c| quote(c).map(|q| format!("{q} = EXCLUDED.{q}")))
                .collect::<Result<_, _>>()?;
            let on_conflict = if others.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", others.join(", "))
            };
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {q} OVERRIDING SYSTEM VALUE
                 SELECT * FROM jsonb_populate_record(null::{q}, $1)
                 ON CONFLICT ({key}) {on_conflict}"
            )))
            .bind(new_row)
            .execute(&mut *conn)
            .await?;
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// Waits until no transaction of this database that began before `since` is open.
async fn wait_for_older_transactions(
    conn: &mut PgConnection,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let older: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND xact_start < $1",
        )
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
        if older == 0 {
            return Ok(());
        }
        if started.elapsed() > DRAIN_TIMEOUT {
            return Err(SpaceError::Busy(format!(
                "{older} transaction(s) older than the move's change capture are still open after {} s; the move waits for them (retry once they end)",
                DRAIN_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
