//! Moving one tenant's rows between two SQLite files of a shard while the tenant keeps writing:
//! from the shared file (many tenants' rows, told apart by `tenant_id`) to the tenant's own
//! file, or back. The building blocks of a live move, with the names and contracts of the
//! PostgreSQL ones ([`crate::postgres::moves`]) so that the orchestrator drives both alike.
//!
//! - **Capture**: triggers on every tenant table of the source file log each change of a
//!   tenant under move ([`CHANGES`]: table, operation, old and new row as `json_object`) — from
//!   any writer, not only through a router. A file has one writer at a time, so once the set-up
//!   commits no write that began before it is still in flight: unlike PostgreSQL, capture need
//!   not wait for older transactions.
//! - **One connection, two files**: the mover opens the *target* and `ATTACH`es the source as
//!   [`SOURCE_SCHEMA`], foreign keys off (a child may arrive before the parent the change log
//!   brings; the comparison checks the rows instead). The target is the main file because a
//!   transaction over attached write-ahead-logged files is atomic per file only, and SQLite
//!   commits the main file first: a crash between the two commits leaves the changes in the
//!   source's log, to be applied again, and the tenant not yet paused there.
//! - **Copy**: table by table (parents first), in batches by primary key: the keys of the next
//!   batch are read, then `INSERT OR IGNORE … SELECT` copies the rows between the previous key
//!   and the batch's last one, so a batch copied twice (after a crash, before the caller saved
//!   its checkpoint) adds nothing.
//! - **Catch-up**: each logged change names the rows it touched (its old and new key); the
//!   target's row under that key is made the source's — an upsert, or a delete when the source
//!   has none any more — and the change leaves the log, in one `BEGIN IMMEDIATE` transaction
//!   over both files. Taking the source's row rather than the logged image keeps each value's
//!   exact type (JSON has no BLOB and may round a REAL) and makes applying a change twice
//!   harmless. The upsert never overwrites another tenant's row: a key that collides with a
//!   neighbour's (an integer key without `tenant_id`, moving back into the shared file) is left
//!   for the comparison to report.
//! - **Switch**: first the full comparison — per table, the tenant's row count and checksum on
//!   both sides — in a read transaction over both files while every writer goes on, leaving
//!   out the rows that changes still in the log touched. Then `BEGIN IMMEDIATE` takes both
//!   files' write lock, so every writer of the source waits for a moment (on its busy timeout)
//!   instead of failing — SQLite cannot pause one tenant alone. Inside it: the last changes
//!   applied, the rows they touched compared (nothing else changed since the full comparison,
//!   so the pause does not grow with the tenant), the target's `AUTOINCREMENT` counters raised
//!   to the source's, and the tenant marked `paused` at the source, whose `BEFORE` triggers then
//!   refuse its writes with [`WRITE_REFUSED`] until [`SqliteSpaces::stop_capture`]. A
//!   difference, at either step, rolls all of it back and names the tables and the rows, by
//!   key range.
//! - **Checksums**: per table, the count and a wrapping sum of the first eight bytes of the
//!   SHA-256 of each row's text — the columns' SQL literals (`quote()`, which keeps types and
//!   BLOBs apart), by name in the move's column order — summed in Rust, as SQLite has no hash
//!   function. Equal rows give equal sums in any file, in any order.
//! - **No schema changes meanwhile**: the copy, the log and the comparison assume both files
//!   keep their shape. SQLite has no event triggers, so there is no guard like PostgreSQL's
//!   `DDL_GUARD`; instead [`SqliteSpaces::migrate`](crate::SpaceDriver::migrate), the one way
//!   the control plane changes a schema, refuses a pending migration on a file with tenants
//!   under move ([`SpaceError::UnderMove`], worded as PostgreSQL's SQLSTATE 55006 refusal).
//!   A schema changed by hand is caught by the comparison at the switch at the latest.

use super::{SqliteSpaces, connect_options, table_exists, tenant_tables};
use crate::error::{Result, SpaceError};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;
use tenantry_core::TenantId;
use tenantry_core::ident::quote;
use tenantry_core::space::Space;

pub use crate::moves::{CHANGES, MOVING, MoveTable, TableChecksum, key_ranges};

/// The message with which a source file refuses the writes of a tenant that has moved away
/// (the wording of PostgreSQL's refusal, less the tenant: older SQLite — 3.40, for one — only
/// parses a literal in `RAISE`, and a file with a trigger it cannot parse is unreadable to it).
pub const WRITE_REFUSED: &str = "tenant is being moved: its writes are paused for a moment, retry";
/// The code a refused write fails with: `SQLITE_CONSTRAINT_TRIGGER`, SQLite's extended result
/// code for `RAISE(ABORT, …)` (what `sqlx`'s `DatabaseError::code` returns). Any trigger of
/// the application can raise it too: tell a move's refusal by this code *and* [`WRITE_REFUSED`].
pub const WRITE_REFUSED_CODE: &str = "1811";
/// The name under which the mover's connection to the target attaches the source.
pub const SOURCE_SCHEMA: &str = "tenantry_source";
/// The prefix of the capture triggers (`tenantry_capture_<i|u|d>_<table>`).
const CAPTURE: &str = "tenantry_capture";
/// The prefix of the triggers that refuse a moved tenant's writes.
const REFUSE: &str = "tenantry_refuse";
/// Logged changes applied per round when the switch applies all that are left.
const SWITCH_BATCH: i64 = 1000;
/// Key ranges named per differing table.
const DIFFERENCES_SHOWN: usize = 10;
/// Columns per `json_object`/`json_insert` call, below SQLite's default limit of 127 arguments.
const JSON_PAIRS: usize = 60;

/// Which file of the mover's connection a statement reads (a lone file is `main`, as the
/// target is).
#[derive(Clone, Copy)]
enum Side {
    /// The source, attached as [`SOURCE_SCHEMA`].
    Source,
    /// The target, the connection's main file.
    Target,
}

impl Side {
    fn schema(self) -> &'static str {
        match self {
            Side::Source => SOURCE_SCHEMA,
            Side::Target => "main",
        }
    }
}

/// One logged change.
#[derive(sqlx::FromRow)]
struct Change {
    seq: i64,
    table_name: String,
    old_row: Option<String>,
    new_row: Option<String>,
}

impl SqliteSpaces {
    /// The tenant tables of `space` as a move copies them: parents first, with their keys and
    /// columns. The seed ledger goes along (it records which seeds the tenant has had); the
    /// migration ledger and the move's own tables do not. A table without a primary key, or
    /// with a BLOB key, cannot be copied in batches: an error names it.
    pub async fn move_tables(&self, space: &Space) -> Result<Vec<MoveTable>> {
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        let tables = read_move_tables(&mut conn).await?;
        conn.close().await?;
        Ok(tables)
    }

    /// The tenant's rows in all of `tables`.
    pub async fn count_rows(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<i64> {
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        let mut total = 0;
        for table in tables {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {} WHERE tenant_id = ?",
                quote(&table.name)?
            )))
            .bind(tenant.to_string())
            .fetch_one(&mut conn)
            .await?;
            total += n;
        }
        conn.close().await?;
        Ok(total)
    }

    /// Starts logging the tenant's changes in `space`, the move's source (idempotent: the
    /// registry, the log and the triggers are created when missing, the triggers replaced, the
    /// tenant registered — unpaused — again).
    pub async fn start_capture(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        let tables = read_move_tables(&mut conn).await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS {MOVING} (
                   tenant_id TEXT PRIMARY KEY NOT NULL, paused INTEGER NOT NULL DEFAULT 0)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {CHANGES} (
                   seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL,
                   table_name TEXT NOT NULL, op TEXT NOT NULL, old_row TEXT, new_row TEXT)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {CHANGES}_tenant ON {CHANGES} (tenant_id, seq)"),
        ] {
            exec(&mut tx, sql).await?;
        }
        for table in &tables {
            for sql in triggers(table)? {
                exec(&mut tx, sql).await?;
            }
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {MOVING} (tenant_id) VALUES (?)
             ON CONFLICT (tenant_id) DO UPDATE SET paused = 0"
        )))
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        conn.close().await?;
        Ok(())
    }

    /// Stops logging the tenant's changes in `space` and forgets those logged; the tenant
    /// writes there again, unlogged and no longer refused. The triggers and the move's tables
    /// go when no tenant of the file is under move any more. A missing file or missing tables
    /// are fine.
    pub async fn stop_capture(&self, space: &Space, tenant: TenantId) -> Result<()> {
        let path = Self::path_of(space)?;
        if !path.exists() {
            return Ok(());
        }
        let mut conn = self.connect(path, false).await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        if table_exists(&mut tx, MOVING).await? {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {MOVING} WHERE tenant_id = ?"
            )))
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        }
        if table_exists(&mut tx, CHANGES).await? {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {CHANGES} WHERE tenant_id = ?"
            )))
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        }
        if tenants_under_move(&mut tx).await?.is_none() {
            remove_capture(&mut tx).await?;
        }
        tx.commit().await?;
        conn.close().await?;
        Ok(())
    }

    /// Copies up to `limit` of the tenant's rows of `table` after key `after` (none: from the
    /// start) from `source` to `target`. Returns how many rows the batch holds and its last key
    /// (a JSON object, column → value: the caller's checkpoint, passed back as `after`), or
    /// `(0, None)` when the table is done. A batch copied before adds nothing.
    pub async fn copy_batch(
        &self,
        source: &Space,
        target: &Space,
        tenant: TenantId,
        table: &MoveTable,
        after: Option<&Value>,
        limit: i64,
    ) -> Result<(usize, Option<Value>)> {
        let mut conn = self.open_move(source, target).await?;
        // The write lock up front, as for every write of the mover: a statement that reads
        // first and writes second fails at once (SQLITE_BUSY, no waiting) when another writer
        // committed in between — the way back copies into a file its neighbours write.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let copied = copy_rows(&mut tx, tenant, table, after, limit).await?;
        tx.commit().await?;
        conn.close().await?;
        Ok(copied)
    }

    /// Applies up to `limit` of the tenant's logged changes, oldest first, from `source` to
    /// `target`, and removes them from the log, in one transaction. Returns how many were
    /// applied (0: caught up).
    pub async fn apply_changes(
        &self,
        source: &Space,
        target: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
        limit: i64,
    ) -> Result<usize> {
        let mut conn = self.open_move(source, target).await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        ensure_under_move(&mut tx, source, tenant).await?;
        let lifted = lift_refusal(&mut tx, tenant).await?;
        let applied = apply_logged(&mut tx, tenant, tables, limit).await?;
        restore_refusal(&mut tx, tenant, lifted).await?;
        tx.commit().await?;
        conn.close().await?;
        Ok(applied)
    }

    /// The switch (see the module doc): both sides compared table by table while the writers
    /// go on, then, under the source's write lock, the last changes applied and the rows they
    /// touched compared, the target's `AUTOINCREMENT` counters raised, and the tenant marked
    /// as moved away at the source, which refuses its writes from then on. Returns how long the
    /// source's writers were held, in milliseconds.
    ///
    /// On a difference nothing is switched (the source goes on taking the tenant's writes) and
    /// [`SpaceError::TargetDiffers`] names the tables, their counts and checksums, and the
    /// differing rows by key range.
    pub async fn switch(
        &self,
        source: &Space,
        target: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<u64> {
        let mut conn = self.open_move(source, target).await?;
        if let Some(differences) = compare_at_snapshot(&mut conn, source, tenant, tables).await? {
            conn.close().await?;
            return Err(SpaceError::TargetDiffers(differences));
        }
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let locked = Instant::now();
        ensure_under_move(&mut tx, source, tenant).await?;
        let lifted = lift_refusal(&mut tx, tenant).await?;
        let touched = logged_keys(&mut tx, tenant, tables).await?;
        while apply_logged(&mut tx, tenant, tables, SWITCH_BATCH).await? > 0 {}
        restore_refusal(&mut tx, tenant, lifted).await?;
        if let Some(differences) = compare_touched(&mut tx, tenant, tables, &touched).await? {
            tx.rollback().await?;
            conn.close().await?;
            return Err(SpaceError::TargetDiffers(differences));
        }
        advance_sequences(&mut tx, tables).await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {SOURCE_SCHEMA}.{MOVING} SET paused = 1 WHERE tenant_id = ?"
        )))
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let held = locked.elapsed().as_millis() as u64;
        conn.close().await?;
        Ok(held)
    }

    /// Per table, the tenant's row count and an order-independent checksum of its rows.
    pub async fn checksums(
        &self,
        space: &Space,
        tenant: TenantId,
        tables: &[MoveTable],
    ) -> Result<Vec<TableChecksum>> {
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            out.push(table_checksum(&mut conn, Side::Target, tenant, table, None).await?);
        }
        conn.close().await?;
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
        let mut conn = self.connect(Self::path_of(space)?, false).await?;
        let rows = table_row_hashes(&mut conn, Side::Target, tenant, table).await?;
        conn.close().await?;
        Ok(rows)
    }

    /// A connection to `target` with `source` attached as [`SOURCE_SCHEMA`], foreign keys off.
    async fn open_move(&self, source: &Space, target: &Space) -> Result<SqliteConnection> {
        let (from, to) = (Self::path_of(source)?, Self::path_of(target)?);
        if from == to {
            return Err(SpaceError::BadSpace(format!(
                "a move needs two files, got {} twice",
                from.display()
            )));
        }
        for path in [from, to] {
            if !path.exists() {
                return Err(SpaceError::Missing(path.display().to_string()));
            }
        }
        let from = utf8(from)?;
        let options = connect_options(to).foreign_keys(false);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::query(AssertSqlSafe(format!(
            "ATTACH DATABASE ? AS {SOURCE_SCHEMA}"
        )))
        .bind(from)
        .execute(&mut conn)
        .await?;
        Ok(conn)
    }
}

/// The tenants under move in the connection's main file, listed, or `None`.
pub(super) async fn tenants_under_move(conn: &mut SqliteConnection) -> Result<Option<String>> {
    if !table_exists(conn, MOVING).await? {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT group_concat(tenant_id, ', ') FROM (SELECT tenant_id FROM {MOVING} ORDER BY 1)"
    )))
    .fetch_one(&mut *conn)
    .await?)
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| SpaceError::BadSpace(format!("{} is not a UTF-8 path", path.display())))
}

async fn exec(conn: &mut SqliteConnection, sql: String) -> Result<()> {
    sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

/// [`SqliteSpaces::move_tables`] on an open connection to the file.
async fn read_move_tables(conn: &mut SqliteConnection) -> Result<Vec<MoveTable>> {
    let mut tables = tenant_tables(conn).await?;
    tables.reverse();
    let mut out = Vec::with_capacity(tables.len());
    for name in tables {
        quote(&name)?;
        let columns: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, upper(type), pk FROM pragma_table_info(?) ORDER BY cid")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
        let mut key: Vec<&(String, String, i64)> = columns.iter().filter(|c| c.2 > 0).collect();
        key.sort_by_key(|c| c.2);
        if key.is_empty() {
            return Err(SpaceError::BadSpace(format!(
                "table {name} has no primary key: a move copies rows in batches by key"
            )));
        }
        if let Some(blob) = key.iter().find(|c| c.1.contains("BLOB")) {
            return Err(SpaceError::BadSpace(format!(
                "the primary key of table {name} has a BLOB column ({}): a move names rows by their key in JSON, which has no BLOB",
                blob.0
            )));
        }
        for (column, _, _) in &columns {
            quote(column)?;
        }
        out.push(MoveTable {
            key: key.iter().map(|c| c.0.clone()).collect(),
            columns: columns.into_iter().map(|c| c.0).collect(),
            name,
        });
    }
    Ok(out)
}

/// A trigger's name, `<prefix>_<op>_<table>`, quoted (the table name was validated; the name
/// may be longer than a validated identifier, which SQLite does not mind).
fn trigger_name(prefix: &str, op: char, table: &str) -> Result<String> {
    quote(table)?;
    Ok(format!("\"{prefix}_{op}_{table}\""))
}

/// A row (`NEW` or `OLD`) as a JSON object of all `columns` (BLOBs as hex), nested in
/// `json_insert` calls past [`JSON_PAIRS`] columns.
fn row_json(row: &str, columns: &[String]) -> Result<String> {
    let mut json = String::new();
    for (i, chunk) in columns.chunks(JSON_PAIRS).enumerate() {
        let pairs = chunk
            .iter()
            .map(|c| {
                let q = quote(c)?;
                let value = format!(
                    "CASE WHEN typeof({row}.{q}) = 'blob' THEN hex({row}.{q}) ELSE {row}.{q} END"
                );
                Ok(if i == 0 {
                    format!("'{c}', {value}")
                } else {
                    format!("'$.{q}', {value}")
                })
            })
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        json = if i == 0 {
            format!("json_object({pairs})")
        } else {
            format!("json_insert({json}, {pairs})")
        };
    }
    Ok(json)
}

/// The capture triggers of a table (log a registered tenant's change after it is written) and
/// the refusal triggers (refuse a paused tenant's write before anything is written), each
/// dropped and created again so that a resumed set-up leaves them current.
fn triggers(table: &MoveTable) -> Result<Vec<String>> {
    let q = quote(&table.name)?;
    let (new, old) = (
        row_json("NEW", &table.columns)?,
        row_json("OLD", &table.columns)?,
    );
    let name = &table.name;
    let whose = |op: char| match op {
        'i' => "NEW.tenant_id",
        'd' => "OLD.tenant_id",
        _ => "OLD.tenant_id, NEW.tenant_id",
    };
    let mut out = Vec::new();
    for (op, event, old_row, new_row) in [
        ('i', "INSERT", "NULL", new.as_str()),
        ('u', "UPDATE", old.as_str(), new.as_str()),
        ('d', "DELETE", old.as_str(), "NULL"),
    ] {
        let (capture, refuse) = (
            trigger_name(CAPTURE, op, name)?,
            trigger_name(REFUSE, op, name)?,
        );
        let tenants = whose(op);
        let logged = op.to_ascii_uppercase();
        out.extend([
            format!("DROP TRIGGER IF EXISTS {capture}"),
            format!(
                "CREATE TRIGGER {capture} AFTER {event} ON {q}
                 WHEN EXISTS (SELECT 1 FROM {MOVING} WHERE tenant_id IN ({tenants}))
                 BEGIN
                   INSERT INTO {CHANGES} (tenant_id, table_name, op, old_row, new_row)
                   SELECT m.tenant_id, '{name}', '{logged}', {old_row}, {new_row}
                   FROM {MOVING} m WHERE m.tenant_id IN ({tenants});
                 END"
            ),
            format!("DROP TRIGGER IF EXISTS {refuse}"),
            format!(
                "CREATE TRIGGER {refuse} BEFORE {event} ON {q}
                 WHEN EXISTS (SELECT 1 FROM {MOVING} WHERE tenant_id IN ({tenants}) AND paused)
                 BEGIN
                   SELECT RAISE(ABORT, '{WRITE_REFUSED}');
                 END"
            ),
        ]);
    }
    Ok(out)
}

/// Drops every trigger of the move and its tables, in the connection's main file.
async fn remove_capture(conn: &mut SqliteConnection) -> Result<()> {
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'
         AND (substr(name, 1, length(?1) + 1) = ?1 || '_' OR substr(name, 1, length(?2) + 1) = ?2 || '_')",
    )
    .bind(CAPTURE)
    .bind(REFUSE)
    .fetch_all(&mut *conn)
    .await?;
    for name in triggers {
        // Only names of the shape this module gives its triggers reach the statement.
        let Some((prefix, op, table)) = split_trigger_name(&name) else {
            continue;
        };
        exec(
            conn,
            format!(
                "DROP TRIGGER IF EXISTS {}",
                trigger_name(prefix, op, table)?
            ),
        )
        .await?;
    }
    exec(conn, format!("DROP TABLE IF EXISTS {CHANGES}")).await?;
    exec(conn, format!("DROP TABLE IF EXISTS {MOVING}")).await
}

/// `(prefix, op, table)` of a trigger named by [`trigger_name`].
fn split_trigger_name(name: &str) -> Option<(&'static str, char, &str)> {
    [CAPTURE, REFUSE].into_iter().find_map(|prefix| {
        let rest = name.strip_prefix(prefix)?.strip_prefix('_')?;
        let mut chars = rest.chars();
        let op = chars.next().filter(|c| matches!(c, 'i' | 'u' | 'd'))?;
        let table = chars.as_str().strip_prefix('_')?;
        Some((prefix, op, table))
    })
}

/// Fails unless the tenant is registered at the source (its capture started).
/// Lets the mover's own transaction write the tenant's rows into a target that refuses them —
/// the way back of a rollback, into the old place, paused since the switch — and says whether
/// it did, for [`restore_refusal`] before the transaction commits. No other writer sees the
/// lifted state: the file has one writer, and readers see only committed transactions.
async fn lift_refusal(conn: &mut SqliteConnection, tenant: TenantId) -> Result<bool> {
    if !table_exists(conn, MOVING).await? {
        return Ok(false);
    }
    let lifted = sqlx::query(AssertSqlSafe(format!(
        "UPDATE main.{MOVING} SET paused = 0 WHERE tenant_id = ? AND paused"
    )))
    .bind(tenant.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(lifted.rows_affected() > 0)
}

/// Puts back the refusal [`lift_refusal`] lifted.
async fn restore_refusal(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    lifted: bool,
) -> Result<()> {
    if lifted {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE main.{MOVING} SET paused = 1 WHERE tenant_id = ?"
        )))
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn ensure_under_move(
    conn: &mut SqliteConnection,
    source: &Space,
    tenant: TenantId,
) -> Result<()> {
    let registered: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {SOURCE_SCHEMA}.sqlite_master WHERE type = 'table' AND name IN (?, ?)"
    )))
    .bind(MOVING)
    .bind(CHANGES)
    .fetch_one(&mut *conn)
    .await?;
    let under_move = registered == 2
        && sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "SELECT count(*) FROM {SOURCE_SCHEMA}.{MOVING} WHERE tenant_id = ?"
        )))
        .bind(tenant.to_string())
        .fetch_one(&mut *conn)
        .await?
            > 0;
    if under_move {
        Ok(())
    } else {
        Err(SpaceError::BadSpace(format!(
            "tenant {tenant} is not under move in {}: start its change capture first",
            source.path.as_deref().unwrap_or(Path::new("?")).display()
        )))
    }
}

/// `"a", "b"` for a key's (or a row's) columns.
fn key_list(key: &[String]) -> Result<String> {
    Ok(key
        .iter()
        .map(|k| quote(k))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// The values of a key's columns from the JSON object bound as parameter `?{param}`.
fn key_values(key: &[String], param: usize) -> Result<String> {
    Ok(key
        .iter()
        .map(|k| quote(k).map(|q| format!("json_extract(?{param}, '$.{q}')")))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// `json_object('a', "a", …)` of a key's columns.
fn key_json(key: &[String]) -> Result<String> {
    Ok(format!(
        "json_object({})",
        key.iter()
            .map(|k| quote(k).map(|q| format!("'{k}', {q}")))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ")
    ))
}

/// `quote("a") || ',' || quote("b") …`: a row as text that tells every value and type apart.
fn row_text(columns: &[String]) -> Result<String> {
    Ok(columns
        .iter()
        .map(|c| quote(c).map(|q| format!("quote({q})")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" || ',' || "))
}

/// The batch of [`SqliteSpaces::copy_batch`] on the mover's connection.
async fn copy_rows(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    table: &MoveTable,
    after: Option<&Value>,
    limit: i64,
) -> Result<(usize, Option<Value>)> {
    let q = quote(&table.name)?;
    let key = key_list(&table.key)?;
    let after_cond = match after {
        None => String::new(),
        Some(after) => {
            check_key(table, after)?;
            format!("AND ({key}) > ({})", key_values(&table.key, 2)?)
        }
    };
    let keys: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT {} FROM {SOURCE_SCHEMA}.{q} WHERE tenant_id = ?1 {after_cond}
         ORDER BY {key} LIMIT ?3",
        key_json(&table.key)?
    )))
    .bind(tenant.to_string())
    .bind(after.map(Value::to_string))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let Some(last) = keys.last() else {
        return Ok((0, None));
    };
    let columns = key_list(&table.columns)?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT OR IGNORE INTO main.{q} ({columns})
         SELECT {columns} FROM {SOURCE_SCHEMA}.{q}
         WHERE tenant_id = ?1 {after_cond} AND ({key}) <= ({})",
        key_values(&table.key, 3)?
    )))
    .bind(tenant.to_string())
    .bind(after.map(Value::to_string))
    .bind(last)
    .execute(&mut *conn)
    .await?;
    let last: Value = serde_json::from_str(last)
        .map_err(|e| SpaceError::BadSpace(format!("an unreadable key of {}: {e}", table.name)))?;
    Ok((keys.len(), Some(last)))
}

/// Fails unless `key` is a JSON object with a value for each of the table's key columns.
fn check_key(table: &MoveTable, key: &Value) -> Result<()> {
    let complete = key
        .as_object()
        .is_some_and(|o| table.key.iter().all(|k| o.contains_key(k)));
    if complete {
        Ok(())
    } else {
        Err(SpaceError::BadSpace(format!(
            "{key} is not a key of table {} (columns {})",
            table.name,
            table.key.join(", ")
        )))
    }
}

/// Applies up to `limit` of the tenant's logged changes inside the caller's transaction and
/// removes them from the log.
async fn apply_logged(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tables: &[MoveTable],
    limit: i64,
) -> Result<usize> {
    let changes: Vec<Change> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT seq, table_name, old_row, new_row FROM {SOURCE_SCHEMA}.{CHANGES}
         WHERE tenant_id = ? ORDER BY seq LIMIT ?"
    )))
    .bind(tenant.to_string())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let Some(last) = changes.last().map(|c| c.seq) else {
        return Ok(0);
    };
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
        for key in touched_keys(table, change)? {
            refresh_row(conn, tenant, table, &key).await?;
        }
    }
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {SOURCE_SCHEMA}.{CHANGES} WHERE tenant_id = ? AND seq <= ?"
    )))
    .bind(tenant.to_string())
    .bind(last)
    .execute(&mut *conn)
    .await?;
    Ok(changes.len())
}

/// The keys (JSON text) of the rows a change touched: its old and its new row's, once each.
fn touched_keys(table: &MoveTable, change: &Change) -> Result<Vec<String>> {
    let bad = || SpaceError::BadSpace(format!("a malformed change of table {}", table.name));
    let mut keys = Vec::with_capacity(2);
    for row in [&change.old_row, &change.new_row].into_iter().flatten() {
        let row: Value = serde_json::from_str(row).map_err(|_| bad())?;
        let key: Map<String, Value> = table
            .key
            .iter()
            .map(|k| row.get(k).cloned().map(|v| (k.clone(), v)).ok_or_else(bad))
            .collect::<Result<_>>()?;
        let key = Value::Object(key).to_string();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(bad());
    }
    Ok(keys)
}

/// Makes the target's row of the tenant under `key` the source's: deleted when the source has
/// none, upserted otherwise (never over another tenant's row under the same key).
async fn refresh_row(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    table: &MoveTable,
    key: &str,
) -> Result<()> {
    let q = quote(&table.name)?;
    let keys = key_list(&table.key)?;
    let values = key_values(&table.key, 2)?;
    let at_source = format!("tenant_id = ?1 AND ({keys}) = ({values})");
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM main.{q} WHERE {at_source}
         AND NOT EXISTS (SELECT 1 FROM {SOURCE_SCHEMA}.{q} WHERE {at_source})"
    )))
    .bind(tenant.to_string())
    .bind(key)
    .execute(&mut *conn)
    .await?;
    let columns = key_list(&table.columns)?;
    let others: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.key.contains(c))
        .map(|c| quote(c).map(|q| format!("{q} = excluded.{q}")))
        .collect::<Result<_, _>>()?;
    let on_conflict = if others.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!(
            "DO UPDATE SET {} WHERE tenantry_target.tenant_id = excluded.tenant_id",
            others.join(", ")
        )
    };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO main.{q} AS tenantry_target ({columns})
         SELECT {columns} FROM {SOURCE_SCHEMA}.{q} WHERE {at_source}
         ON CONFLICT ({keys}) {on_conflict}"
    )))
    .bind(tenant.to_string())
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The keys of rows, per table, as SQLite's `json_object` renders them (key columns in order).
type Keys = HashMap<String, HashSet<String>>;

/// The keys of the rows the tenant's logged changes (all those in the log now) touched.
async fn logged_keys(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tables: &[MoveTable],
) -> Result<Keys> {
    let mut out = Keys::new();
    for table in tables {
        let of = |row: &str| -> Result<String> {
            let pairs = table
                .key
                .iter()
                .map(|k| quote(k).map(|q| format!("'{k}', json_extract({row}, '$.{q}')")))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ");
            Ok(format!(
                "CASE WHEN {row} IS NULL THEN NULL ELSE json_object({pairs}) END"
            ))
        };
        let keys: Vec<(Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {}, {} FROM {SOURCE_SCHEMA}.{CHANGES} WHERE tenant_id = ? AND table_name = ?",
            of("old_row")?,
            of("new_row")?
        )))
        .bind(tenant.to_string())
        .bind(&table.name)
        .fetch_all(&mut *conn)
        .await?;
        let keys: HashSet<String> = keys
            .into_iter()
            .flat_map(|(old, new)| [old, new])
            .flatten()
            .collect();
        if !keys.is_empty() {
            out.insert(table.name.clone(), keys);
        }
    }
    Ok(out)
}

/// How one table differs between the two sides.
struct Difference {
    at_source: TableChecksum,
    at_target: TableChecksum,
    /// The differing rows, by key range ([`key_ranges`]).
    ranges: Vec<String>,
}

/// The differences in words: the tables with their counts and checksums (`of` says which rows
/// were counted), then the rows by key range.
fn describe(differences: &[Difference], of: &str) -> String {
    let counts: Vec<String> = differences
        .iter()
        .map(|d| d.at_source.beside(&d.at_target))
        .collect();
    let rows: Vec<String> = differences
        .iter()
        .map(|d| format!("{}: {}", d.at_source.table, d.ranges.join(", ")))
        .collect();
    format!(
        "{}{of}; the rows that differ, by key: {}",
        counts.join("; "),
        rows.join("; ")
    )
}

/// The full comparison, in a read transaction over both files while the source's writers go
/// on: every row of the tenant but those under `pending` keys (changes logged at that point
/// and not yet applied, which the switch compares under its lock). `None` when equal.
async fn compare_at_snapshot(
    conn: &mut SqliteConnection,
    source: &Space,
    tenant: TenantId,
    tables: &[MoveTable],
) -> Result<Option<String>> {
    let mut tx = conn.begin().await?;
    ensure_under_move(&mut tx, source, tenant).await?;
    let pending = logged_keys(&mut tx, tenant, tables).await?;
    let mut differences = Vec::new();
    for table in tables {
        let skip = pending.get(&table.name);
        let at_source = table_checksum(&mut tx, Side::Source, tenant, table, skip).await?;
        let at_target = table_checksum(&mut tx, Side::Target, tenant, table, skip).await?;
        if at_source == at_target {
            continue;
        }
        let unless_pending = |rows: Vec<(String, String)>| -> Vec<(String, String)> {
            rows.into_iter()
                .filter(|(key, _)| skip.is_none_or(|s| !s.contains(key)))
                .collect()
        };
        let source_rows =
            unless_pending(table_row_hashes(&mut tx, Side::Source, tenant, table).await?);
        let target_rows =
            unless_pending(table_row_hashes(&mut tx, Side::Target, tenant, table).await?);
        differences.push(Difference {
            at_source,
            at_target,
            ranges: key_ranges(&source_rows, &target_rows, DIFFERENCES_SHOWN),
        });
    }
    tx.commit().await?;
    Ok((!differences.is_empty()).then(|| describe(&differences, "")))
}

/// The comparison under the switch's lock: the rows under `touched` keys only (all else was
/// compared at the snapshot and has not changed since). `None` when equal.
async fn compare_touched(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tables: &[MoveTable],
    touched: &Keys,
) -> Result<Option<String>> {
    let mut differences = Vec::new();
    for table in tables {
        let Some(keys) = touched.get(&table.name) else {
            continue;
        };
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort();
        let source_rows = rows_under(conn, Side::Source, tenant, table, &keys).await?;
        let target_rows = rows_under(conn, Side::Target, tenant, table, &keys).await?;
        let (at_source, at_target) = (
            checksum_of(table, &source_rows),
            checksum_of(table, &target_rows),
        );
        if at_source != at_target {
            differences.push(Difference {
                at_source,
                at_target,
                ranges: key_ranges(&source_rows, &target_rows, DIFFERENCES_SHOWN),
            });
        }
    }
    Ok((!differences.is_empty()).then(|| {
        describe(
            &differences,
            ", among the rows changed since the full comparison",
        )
    }))
}

/// The tenant's rows of `table` on `side` under `keys`, as (key JSON, row hash), in `keys`'s
/// order.
async fn rows_under(
    conn: &mut SqliteConnection,
    side: Side,
    tenant: TenantId,
    table: &MoveTable,
    keys: &[&String],
) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE tenant_id = ?1 AND ({}) = ({})",
        row_text(&table.columns)?,
        side.schema(),
        quote(&table.name)?,
        key_list(&table.key)?,
        key_values(&table.key, 2)?
    );
    let mut out = Vec::new();
    for key in keys {
        let text: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .bind(tenant.to_string())
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(text) = text {
            out.push(((*key).clone(), row_hash(&text)));
        }
    }
    Ok(out)
}

/// The hash of a row's text (see the module doc), in hex.
fn row_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Adds a row's hash to a checksum: the sum of the hashes' first eight bytes.
fn add_hash(sum: u64, hash: &str) -> u64 {
    let head = hash
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_default();
    sum.wrapping_add(head)
}

/// The count and checksum of rows already hashed.
fn checksum_of(table: &MoveTable, rows: &[(String, String)]) -> TableChecksum {
    TableChecksum {
        table: table.name.clone(),
        rows: rows.len() as i64,
        checksum: format!(
            "{:016x}",
            rows.iter().fold(0, |sum, (_, hash)| add_hash(sum, hash))
        ),
    }
}

/// The count and order-independent checksum of the tenant's rows of `table` on `side` (in the
/// connection's main file for [`Side::Target`]), less those under `skip` keys. Streams the
/// rows: the tenant may be large.
async fn table_checksum(
    conn: &mut SqliteConnection,
    side: Side,
    tenant: TenantId,
    table: &MoveTable,
    skip: Option<&HashSet<String>>,
) -> Result<TableChecksum> {
    let sql = format!(
        "SELECT {}, {} FROM {}.{} WHERE tenant_id = ?",
        key_json(&table.key)?,
        row_text(&table.columns)?,
        side.schema(),
        quote(&table.name)?
    );
    let mut texts = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql))
        .bind(tenant.to_string())
        .fetch(&mut *conn);
    let (mut rows, mut sum) = (0i64, 0u64);
    while let Some((key, text)) = texts.try_next().await? {
        if skip.is_some_and(|s| s.contains(&key)) {
            continue;
        }
        sum = add_hash(sum, &row_hash(&text));
        rows += 1;
    }
    Ok(TableChecksum {
        table: table.name.clone(),
        rows,
        checksum: format!("{sum:016x}"),
    })
}

/// The tenant's rows of `table` on `side` as (key JSON, row hash), in key order.
async fn table_row_hashes(
    conn: &mut SqliteConnection,
    side: Side,
    tenant: TenantId,
    table: &MoveTable,
) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT {}, {} FROM {}.{} WHERE tenant_id = ? ORDER BY {}",
        key_json(&table.key)?,
        row_text(&table.columns)?,
        side.schema(),
        quote(&table.name)?,
        key_list(&table.key)?
    );
    let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(key, text)| (key, row_hash(&text)))
        .collect())
}

/// Raises each `AUTOINCREMENT` counter of `tables` at the target to at least the source's, so
/// that rows the tenant adds at its new place never take a number it used at the old one.
async fn advance_sequences(conn: &mut SqliteConnection, tables: &[MoveTable]) -> Result<()> {
    let has_counters = |schema: &str| {
        format!("SELECT count(*) FROM {schema}.sqlite_master WHERE name = 'sqlite_sequence'")
    };
    for schema in [SOURCE_SCHEMA, "main"] {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(has_counters(schema)))
            .fetch_one(&mut *conn)
            .await?;
        if n == 0 {
            return Ok(());
        }
    }
    for table in tables {
        let at_source: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT seq FROM {SOURCE_SCHEMA}.sqlite_sequence WHERE name = ?"
        )))
        .bind(&table.name)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(at_source) = at_source else {
            continue;
        };
        let raised =
            sqlx::query("UPDATE main.sqlite_sequence SET seq = max(seq, ?) WHERE name = ?")
                .bind(at_source)
                .bind(&table.name)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        if raised == 0 {
            sqlx::query("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?, ?)")
                .bind(&table.name)
                .bind(at_source)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_test_table(columns: usize) -> MoveTable {
        MoveTable {
            name: "things".into(),
            key: vec!["c0".into()],
            columns: (0..columns).map(|i| format!("c{i}")).collect(),
        }
    }

    #[test]
    fn wide_rows_are_logged_in_calls_sqlite_accepts() {
        let json = row_json("NEW", &make_test_table(130).columns).unwrap();
        assert!(json.starts_with("json_insert(json_insert(json_object('c0', "));
        assert!(json.contains("'$.\"c60\"'") && json.contains("'$.\"c129\"'"));
        assert_eq!(
            row_json("OLD", &make_test_table(1).columns).unwrap(),
            "json_object('c0', CASE WHEN typeof(OLD.\"c0\") = 'blob' THEN hex(OLD.\"c0\") ELSE OLD.\"c0\" END)"
        );
    }

    #[test]
    fn trigger_names_are_read_back_and_nothing_else() {
        let name = trigger_name(CAPTURE, 'u', "order_items").unwrap();
        assert_eq!(name, "\"tenantry_capture_u_order_items\"");
        assert_eq!(
            split_trigger_name("tenantry_refuse_d_customers"),
            Some((REFUSE, 'd', "customers"))
        );
        assert_eq!(split_trigger_name("tenantry_capture_x_customers"), None);
        assert_eq!(split_trigger_name("tenantry_captured"), None);
        assert!(trigger_name(CAPTURE, 'i', "Bad\"Name").is_err());
    }

    #[test]
    fn the_refusal_is_a_plain_literal() {
        assert!(!WRITE_REFUSED.contains('\''));
        assert!(WRITE_REFUSED.contains("is being moved"));
    }
}
