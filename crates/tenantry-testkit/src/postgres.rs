//! Real PostgreSQL for tests: a unique database per test on the machine's server, and extra
//! servers (for multi-shard tests) started with `initdb`/`pg_ctl` as the `postgres` OS user,
//! since `initdb` refuses to run as root.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The machine's PostgreSQL admin URL (`TENANTRY_TEST_PG`, default the local server).
pub fn admin_url() -> String {
    std::env::var("TENANTRY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `db` on the server of `admin`.
pub fn url_for(admin: &str, db: &str) -> String {
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => format!("{admin}/{db}"),
    }
}

/// A unique, lower-case name with `prefix`, safe as an identifier.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn reachable(url: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            true
        }
        _ => false,
    }
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDatabase {
    pub name: String,
    /// Connection URL of the database.
    pub url: String,
    admin: String,
}

impl TestDatabase {
    /// Creates a fresh database on the machine's PostgreSQL, or returns `None` (after printing
    /// why) when there is none outside CI.
    pub async fn create(prefix: &str) -> Option<Self> {
        Self::create_on(&admin_url(), prefix).await
    }

    /// Creates a fresh database on the server of `admin`.
    pub async fn create_on(admin: &str, prefix: &str) -> Option<Self> {
        if !reachable(admin).await {
            return crate::missing(&format!("PostgreSQL at {admin}"));
        }
        let name = unique_name(prefix);
        let mut conn = PgConnection::connect(admin).await.ok()?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        Some(Self {
            url: url_for(admin, &name),
            name,
            admin: admin.to_owned(),
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop_databases(&self.admin, std::slice::from_ref(&self.name));
    }
}

/// Drops databases (and waits), from synchronous code such as `Drop`.
pub fn drop_databases(admin: &str, names: &[String]) {
    let admin = admin.to_owned();
    let names = names.to_vec();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut conn) = PgConnection::connect(&admin).await {
                for name in names {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

/// A PostgreSQL server started for the test on a free port, stopped (and its files removed)
/// when dropped.
pub struct TestServer {
    pub port: u16,
    /// Admin URL (`postgres` superuser, trust auth) of its `postgres` database.
    pub url: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Where the PostgreSQL server binaries are.
fn server_bin() -> Option<PathBuf> {
    let candidates = std::env::var("TENANTRY_PG_BIN")
        .map(|p| vec![PathBuf::from(p)])
        .unwrap_or_else(|_| {
            ["17", "16", "15", "14"]
                .iter()
                .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
                .collect()
        });
    candidates.into_iter().find(|p| p.join("initdb").exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` OS user when we are root.
fn run_pg(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let exe = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestServer {
    /// Starts a fresh server tuned for tests (`fsync=off`), or returns `None` (after printing
    /// why) outside CI when the server binaries are missing.
    pub async fn start() -> Option<Self> {
        Self::start_with(false).await
    }

    /// Starts a fresh server that syncs to disk like a production one, for benchmarks.
    pub async fn start_durable() -> Option<Self> {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> Option<Self> {
        let Some(bin) = server_bin() else {
            return crate::missing("PostgreSQL server binaries (initdb, pg_ctl)");
        };
        let dir = tempfile::Builder::new()
            .prefix("tenantry-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown of the test server directory failed"
            );
        }
        let data = dir.path().join("data");
        let data_s = data.to_string_lossy().into_owned();
        let sock = dir.path().to_string_lossy().into_owned();
        run_pg(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .expect("initdb");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200 -c shared_buffers=32MB",
                if durable { "on" } else { "off" }
            );
            let log = dir.path().join("server.log").to_string_lossy().into_owned();
            match run_pg(
                &bin,
                "pg_ctl",
                &[
                    "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
                ],
            ) {
                Ok(()) => {
                    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !reachable(&url).await {
                        assert!(
                            Instant::now() < deadline,
                            "test server on {port} never answered"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    return Some(Self {
                        port,
                        url,
                        dir,
                        bin,
                    });
                }
                Err(e) => last_err = e,
            }
        }
        panic!("could not start a test PostgreSQL server: {last_err}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let _ = run_pg(
            &self.bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_database_is_created_and_dropped() {
        let Some(db) = TestDatabase::create("testkit").await else {
            return;
        };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        let name = db.name.clone();
        drop(db);
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn an_extra_server_starts_and_stops() {
        let Some(server) = TestServer::start().await else {
            return;
        };
        let mut conn = PgConnection::connect(&server.url).await.unwrap();
        let port: String = sqlx::query_scalar("SHOW port")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(port, server.port.to_string());
    }
}
