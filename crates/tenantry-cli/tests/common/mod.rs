//! Shared helpers for the end-to-end tests: each test runs the real `tenantry` binary in a
//! temporary directory of its own, set up with `tenantry init`.

// Every test crate includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod api;
pub mod server;
pub mod spec;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, SqliteConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use tempfile::TempDir;

/// The storefront's tables every tenant space must hold.
pub const STOREFRONT_TABLES: &[&str] = &[
    "customers",
    "customer_addresses",
    "orders",
    "order_items",
    "shopping_carts",
    "cart_items",
    "users",
    "store_settings",
];

/// The events of a provisioning, in order.
pub const PROVISIONED: &[&str] = &["TenantCreated", "TenantProvisioned", "TenantActivated"];

/// One test's world: a directory initialised by `tenantry init`.
pub struct Env {
    dir: TempDir,
}

/// Initialises a fresh environment in a temporary directory of its own.
pub fn make_test_env() -> Env {
    make_test_env_with(&[])
}

/// [`make_test_env`] with more arguments of `tenantry init` (`--postgres URL`, say).
pub fn make_test_env_with(init_args: &[&str]) -> Env {
    let dir = tempfile::tempdir().expect("temporary directory");
    let env = Env { dir };
    let out = env
        .command()
        .arg("init")
        .arg(env.path())
        .args(init_args)
        .output()
        .expect("run tenantry init");
    assert!(
        out.status.success(),
        "tenantry init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env
}

impl Env {
    /// The environment's directory (holding `tenantry.toml`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `data/`, where the default configuration keeps the catalog, shards and storage.
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The directory of a SQLite shard in the default configuration.
    pub fn shard_dir(&self, shard: &str) -> PathBuf {
        self.data_dir().join("shards").join(shard)
    }

    /// `data/storage/<region>/tenants/<id>/` for a tenant (as JSON from `tenant show`).
    pub fn storage_folder(&self, tenant: &Value) -> PathBuf {
        self.data_dir()
            .join("storage")
            .join(str_of(tenant, "region"))
            .join("tenants")
            .join(str_of(tenant, "id"))
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("tenantry.toml")
    }

    /// The binary, run from the environment's directory, with no `TENANTRY_*` variable of the
    /// test runner's environment leaking in.
    pub fn command(&self) -> Command {
        let mut cmd = Command::cargo_bin("tenantry").expect("the tenantry binary is built");
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TENANTRY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd
    }

    /// [`Env::command`] as a `std::process::Command`, for a process the test reads while it
    /// runs.
    pub fn command_std(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tenantry"));
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TENANTRY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd
    }

    /// Runs `tenantry ARGS` and returns the assertion handle.
    pub fn tenantry<I, S>(&self, args: I) -> Assert
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command().args(args).assert()
    }

    /// Runs `tenantry ARGS` with `TENANTRY_FAILPOINTS=spec`.
    pub fn tenantry_with_failpoints<I, S>(&self, spec: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command()
            .env("TENANTRY_FAILPOINTS", spec)
            .args(args)
            .output()
            .expect("run tenantry")
    }

    /// Runs `tenantry ARGS -o json`, requires success, and parses standard output.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self
            .command()
            .args(args)
            .args(["-o", "json"])
            .output()
            .expect("run tenantry");
        assert!(
            out.status.success(),
            "`tenantry {} -o json` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        parse_json(&out.stdout, args)
    }

    /// Creates a tenant and returns what `tenant create -o json` printed (the `show` view).
    pub fn create(&self, slug: &str, plan: &str, region: &str, extra: &[&str]) -> Value {
        let mut args = vec!["tenant", "create", slug, "--plan", plan, "--region", region];
        args.extend_from_slice(extra);
        let tenant = self.json(&args);
        assert_eq!(tenant["slug"], slug, "{tenant:#}");
        assert_eq!(tenant["state"], "active", "{tenant:#}");
        tenant
    }

    /// `tenant show SLUG -o json`.
    pub fn show(&self, slug: &str) -> Value {
        self.json(&["tenant", "show", slug])
    }

    /// `events list --tenant SLUG -o json`.
    pub fn events(&self, slug: &str) -> Vec<Value> {
        as_array(self.json(&["events", "list", "--tenant", slug]))
    }

    /// The tenant's event types, in outbox order (after checking `seq` strictly increases).
    pub fn event_types(&self, slug: &str) -> Vec<String> {
        let events = self.events(slug);
        let seqs: Vec<i64> = events
            .iter()
            .map(|e| e["seq"].as_i64().expect("seq"))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "event seq of {slug} is not strictly increasing: {seqs:?}"
        );
        events.iter().map(|e| str_of(e, "event_type")).collect()
    }

    /// `tenant history SLUG -o json` as (from, to) pairs.
    pub fn transitions(&self, slug: &str) -> Vec<(Option<String>, String)> {
        as_array(self.json(&["tenant", "history", slug]))
            .iter()
            .map(|t| (t["from"].as_str().map(str::to_owned), str_of(t, "to")))
            .collect()
    }

    /// `ops list -o json`.
    pub fn operations(&self) -> Vec<Value> {
        as_array(self.json(&["ops", "list"]))
    }

    /// `ops steps KIND -o json`.
    pub fn steps(&self, kind: &str) -> Vec<String> {
        as_array(self.json(&["ops", "steps", kind]))
            .iter()
            .map(|s| s.as_str().expect("step name").to_owned())
            .collect()
    }

    /// The catalog and the disk, as far as a caller can see them.
    pub fn snapshot(&self) -> Snapshot {
        // The commands first: opening the catalog may create it, and that is not a change.
        let tenants = self.json(&["tenant", "list", "--all"]);
        let events = self.json(&["events", "list"]);
        let operations = self.json(&["ops", "list"]);
        Snapshot {
            files: files_under(&self.data_dir()),
            tenants,
            events,
            operations,
        }
    }

    /// Replaces `tenantry.toml` with `text`, returning the original text.
    pub fn replace_config(&self, text: &str) -> String {
        let original = std::fs::read_to_string(self.config_path()).expect("read tenantry.toml");
        std::fs::write(self.config_path(), text).expect("write tenantry.toml");
        original
    }
}

/// What [`Env::snapshot`] sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Files under `data/` (without SQLite's `-wal`/`-shm`), with sizes except for SQLite
    /// databases (whose size changes with checkpoints, not with content).
    pub files: Vec<String>,
    pub tenants: Value,
    pub events: Value,
    pub operations: Value,
}

fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else if rel.ends_with("-wal") || rel.ends_with("-shm") {
                continue;
            } else if is_sqlite(&path) {
                out.push(rel);
            } else {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                out.push(format!("{rel} ({size} bytes)"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map(|()| &header == b"SQLite format 3\0")
        .unwrap_or(false)
}

pub fn parse_json(stdout: &[u8], args: &[&str]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "`tenantry {}` did not print JSON ({e}):\n{}",
            args.join(" "),
            String::from_utf8_lossy(stdout)
        )
    })
}

pub fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("expected a JSON array, got {other:#}"),
    }
}

/// A string field of a JSON object, or a panic naming it.
pub fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v:#}"))
        .to_owned()
}

/// The tenant's space file (`space.path` of `tenant show`).
pub fn space_path(tenant: &Value) -> PathBuf {
    PathBuf::from(
        tenant["space"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no space.path in {tenant:#}")),
    )
}

/// The file a database tenant gets on a SQLite shard: `tenant_<id without hyphens>.db`.
pub fn database_file_name(tenant_id: &str) -> String {
    format!("tenant_{}.db", tenant_id.replace('-', ""))
}

/// Standard error as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether the process was killed by a signal (a failpoint's abort), on Unix.
pub fn killed_by_signal(out: &Output) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        out.status.signal().is_some()
    }
    #[cfg(not(unix))]
    {
        !out.status.success()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading tenant spaces (read-only).

fn with_space<T>(
    path: &Path,
    f: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
) -> T {
    assert!(path.exists(), "{} does not exist", path.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()));
        let out = f(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("query {}: {e}", path.display()));
        let _ = sqlx::Connection::close(conn).await;
        out
    })
}

/// The tables of a SQLite database.
pub fn sqlite_tables(path: &Path) -> BTreeSet<String> {
    with_space(path, async |conn| {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut *conn)
                .await?;
        Ok(names.into_iter().collect())
    })
}

/// `SELECT count(*) FROM users WHERE role = 'admin' AND tenant_id = ?`.
pub fn admin_count(path: &Path, tenant_id: &str) -> i64 {
    with_space(path, async |conn| {
        sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin' AND tenant_id = ?")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await
    })
}

/// `SELECT count(*) FROM users WHERE role = 'admin'` (every tenant in the file).
pub fn all_admins(path: &Path) -> i64 {
    with_space(path, async |conn| {
        sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
            .fetch_one(&mut *conn)
            .await
    })
}

/// Rows of `store_settings` for the tenant.
pub fn store_settings_count(path: &Path, tenant_id: &str) -> i64 {
    with_space(path, async |conn| {
        sqlx::query_scalar("SELECT count(*) FROM store_settings WHERE tenant_id = ?")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await
    })
}

/// Rows per `tenant_id`, over every table that has a `tenant_id` column.
pub fn rows_by_tenant(path: &Path) -> BTreeMap<String, i64> {
    with_space(path, async |conn| {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND EXISTS (
                 SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant_id')",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut out = BTreeMap::new();
        for table in tables {
            assert!(
                table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "unexpected table name {table:?}"
            );
            let sql = format!("SELECT tenant_id, count(*) FROM \"{table}\" GROUP BY tenant_id");
            let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await?;
            for (tenant, n) in rows {
                *out.entry(tenant).or_insert(0) += n;
            }
        }
        Ok(out)
    })
}

/// The tenant's rows, summed over every table with a `tenant_id` column.
pub fn tenant_rows(path: &Path, tenant_id: &str) -> i64 {
    rows_by_tenant(path).get(tenant_id).copied().unwrap_or(0)
}

/// What `tenant show` says of a tenant's dedicated compute.
pub fn compute_of(env: &Env, slug: &str) -> Value {
    env.show(slug)["compute_status"].clone()
}

/// The process id in a process runtime's compute status.
pub fn pid_of(compute: &Value) -> u32 {
    compute["detail"]
        .as_str()
        .and_then(|d| d.strip_prefix("pid "))
        .and_then(|p| p.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {compute:#}"))
}

/// The environment a process was started with.
pub fn environ(pid: u32) -> std::collections::BTreeMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}
