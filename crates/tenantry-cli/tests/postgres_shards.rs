//! PostgreSQL end to end, through the real binary: a PostgreSQL catalog, three PostgreSQL
//! shards on three servers (two in eu-west, one in us-east), row-level security for shared
//! tenants, a database and role per dedicated tenant, draining, the warm pool, and fleet
//! migrations with one broken tenant.

use assert_cmd::Command;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use tenantry_testkit::postgres::{TestDatabase, TestServer, url_for};

struct Env {
    dir: tempfile::TempDir,
    /// Everything every command printed, to check that no password ever appears.
    printed: std::sync::Mutex<String>,
}

impl Env {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let out = Command::cargo_bin("tenantry")
            .unwrap()
            .current_dir(self.path())
            .env_remove("TENANTRY_CONFIG")
            .env_remove("TENANTRY_MASTER_KEY")
            .env_remove("TENANTRY_FAILPOINTS")
            .args(args)
            .output()
            .unwrap();
        let mut printed = self.printed.lock().unwrap();
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "tenantry {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }

    fn tenant(&self, slug: &str) -> Value {
        self.json(&["tenant", "show", slug])
    }
}

/// Three shard servers and a catalog database; `None` when PostgreSQL is unavailable here.
struct Cluster {
    eu1: TestServer,
    eu2: TestServer,
    us1: TestServer,
    catalog: TestDatabase,
}

async fn cluster() -> Option<Cluster> {
    let catalog = TestDatabase::create("tenantry_catalog").await?;
    let (eu1, eu2, us1) = (
        TestServer::start().await?,
        TestServer::start().await?,
        TestServer::start().await?,
    );
    Some(Cluster {
        eu1,
        eu2,
        us1,
        catalog,
    })
}

fn write_config(env: &Env, c: &Cluster) {
    env.ok(&["init", "."]);
    let common = tenantry_core::config::DEFAULT_TOML;
    let plans = &common[common.find("# Plans:").unwrap()..];
    let text = format!(
        r#"
[catalog]
url = "{catalog}"
[storage]
root = "data/storage"
[secrets]
master_key_file = "data/master.key"
[application]
name = "storefront"
migrations = "app/migrations"
seeds = "app/seeds"
[regions.eu-west]
shared_shard = "eu-west-1"
[regions.us-east]
[[shards]]
name = "eu-west-1"
region = "eu-west"
engine = "postgres"
url = "{eu1}"
capacity = 100
[[shards]]
name = "eu-west-2"
region = "eu-west"
engine = "postgres"
url = "{eu2}"
capacity = 100
[[shards]]
name = "us-east-1"
region = "us-east"
engine = "postgres"
url = "{us1}"
capacity = 100
{plans}"#,
        catalog = c.catalog.url,
        eu1 = c.eu1.url,
        eu2 = c.eu2.url,
        us1 = c.us1.url,
    );
    std::fs::write(env.path().join("tenantry.toml"), text).unwrap();
}

fn new_env() -> Env {
    Env {
        dir: tempfile::tempdir().unwrap(),
        printed: Default::default(),
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

/// The tenant's own database credentials, opened the way Tenantry does.
async fn credentials(env: &Env, catalog_url: &str, tenant_id: &str) -> (String, String) {
    let key_text = std::fs::read_to_string(env.path().join("data/master.key")).unwrap();
    let key = tenantry_core::secrets::MasterKey::parse(&key_text).unwrap();
    let mut conn = connect(catalog_url).await;
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT ciphertext FROM tenant_secrets WHERE tenant_id::text = $1 AND name = 'database'",
    )
    .bind(tenant_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let plain: Value = serde_json::from_slice(&key.open(tenant_id, &sealed).unwrap()).unwrap();
    (
        plain["role"].as_str().unwrap().to_owned(),
        plain["password"].as_str().unwrap().to_owned(),
    )
}

fn with_user(server_url: &str, db: &str, user: &str, password: &str) -> String {
    let url = url_for(server_url, db);
    url.replacen("postgres@", &format!("{user}:{password}@"), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_isolation_rls_pool_and_residency() {
    let Some(c) = cluster().await else { return };
    let env = new_env();
    write_config(&env, &c);

    // Standard tenants land shared, with RLS forced.
    env.ok(&[
        "tenant", "create", "acme", "--plan", "standard", "--region", "eu-west",
    ]);
    env.ok(&[
        "tenant", "create", "wayne", "--plan", "standard", "--region", "eu-west",
    ]);
    let acme = env.tenant("acme");
    let wayne = env.tenant("wayne");
    assert_eq!(acme["isolation"], "shared");
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    assert_eq!(acme["space"]["shard"], "eu-west-1");

    let app = url_for(&c.eu1.url, &shared_db).replacen("postgres@", "tenantry_app@", 1);
    let mut as_app = connect(&app).await;
    let unset: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut as_app)
        .await
        .unwrap();
    assert_eq!(
        unset, 0,
        "without the tenant setting the application role sees nothing"
    );
    let mut tx = as_app.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
        .bind(acme["id"].as_str().unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM users")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![acme["id"].as_str().unwrap().to_owned()]);
    tx.commit().await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut as_app)
        .await
        .unwrap();
    assert_eq!(after, 0, "the setting does not outlive its transaction");
    let _ = wayne;

    // A premium tenant of us-east gets its own database on the us-east shard.
    env.ok(&[
        "tenant", "create", "globex", "--plan", "premium", "--region", "us-east",
    ]);
    let globex = env.tenant("globex");
    assert_eq!(globex["isolation"], "database");
    assert_eq!(globex["shard"], "us-east-1");
    let globex_db = globex["space"]["database"].as_str().unwrap().to_owned();
    let mut us = connect(&c.us1.url).await;
    let on_us: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&globex_db)
        .fetch_one(&mut us)
        .await
        .unwrap();
    assert_eq!(on_us, 1);
    for eu in [&c.eu1.url, &c.eu2.url] {
        let mut conn = connect(eu).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&globex_db)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "never on an eu-west server");
    }

    // A drained shard receives no new tenant.
    env.ok(&["shard", "drain", "eu-west-2"]);
    for slug in ["hooli", "pied-piper", "initech"] {
        env.ok(&[
            "tenant", "create", slug, "--plan", "premium", "--region", "eu-west",
        ]);
        assert_eq!(env.tenant(slug)["shard"], "eu-west-1", "{slug}");
    }
    let shards = env.json(&["shard", "list"]);
    let eu2 = shards
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "eu-west-2")
        .unwrap();
    assert_eq!(eu2["state"], "draining");
    assert_eq!(eu2["used"], 0);

    // One tenant's role cannot reach another's database; its own works.
    let hooli = env.tenant("hooli");
    let initech = env.tenant("initech");
    let (role, password) = credentials(&env, &c.catalog.url, hooli["id"].as_str().unwrap()).await;
    let own = with_user(
        &c.eu1.url,
        hooli["space"]["database"].as_str().unwrap(),
        &role,
        &password,
    );
    connect(&own).await.close().await.unwrap();
    let other = with_user(
        &c.eu1.url,
        initech["space"]["database"].as_str().unwrap(),
        &role,
        &password,
    );
    let refused = PgConnection::connect(&other).await;
    assert!(
        refused.is_err(),
        "tenant hooli's role connected to initech's database"
    );

    // The warm pool: concurrent provisionings each claim their own pooled database.
    env.ok(&["pool", "fill", "--shard", "us-east-1", "--count", "3"]);
    let status = env.json(&["pool", "status"]);
    assert_eq!(status[0]["available"], 3);
    let handles: Vec<_> = ["p1", "p2", "p3"]
        .into_iter()
        .map(|slug| {
            let dir = env.path().to_path_buf();
            std::thread::spawn(move || {
                Command::cargo_bin("tenantry")
                    .unwrap()
                    .current_dir(dir)
                    .args([
                        "tenant", "create", slug, "--plan", "premium", "--region", "us-east",
                    ])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dbs: std::collections::BTreeSet<String> = ["p1", "p2", "p3"]
        .iter()
        .map(|s| {
            env.tenant(s)["space"]["database"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(dbs.len(), 3, "each provisioning has a database of its own");
    let status = env.json(&["pool", "status"]);
    let available: i64 = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["available"].as_i64().unwrap())
        .sum();
    assert_eq!(available, 0, "all three came from the pool: {status}");
    // Each keeps its pooled database's name, reached with its own sealed role.
    assert!(
        dbs.iter().all(|db| db.starts_with("tenant_pool_")),
        "{dbs:?}"
    );

    // A pooled database dropped by hand leaves the pool when a provisioning claims it; that
    // tenant gets a database created for it.
    env.ok(&["pool", "fill", "--shard", "us-east-1", "--count", "1"]);
    let pooled: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'tenant\\_pool\\_%'",
    )
    .fetch_all(&mut us)
    .await
    .unwrap();
    let gone: Vec<&String> = pooled.iter().filter(|db| !dbs.contains(*db)).collect();
    assert_eq!(gone.len(), 1, "{pooled:?}");
    for statement in ["DROP DATABASE {} WITH (FORCE)", "DROP ROLE {}"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(
            statement.replace("{}", &format!("\"{}\"", gone[0])),
        ))
        .execute(&mut us)
        .await
        .unwrap();
    }
    env.ok(&[
        "tenant", "create", "p4", "--plan", "premium", "--region", "us-east",
    ]);
    let p4 = env.tenant("p4");
    assert_eq!(
        p4["space"]["database"].as_str().unwrap(),
        format!("tenant_{}", p4["id"].as_str().unwrap().replace('-', ""))
    );
    let status = env.json(&["pool", "status"]);
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["available"] == 0 && s["claimed"] == 0),
        "the missing database left the pool: {status}"
    );

    // Delete drops the database and the role.
    env.ok(&["tenant", "delete", "hooli"]);
    let mut eu = connect(&c.eu1.url).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
    )
    .bind(hooli["space"]["database"].as_str().unwrap())
    .bind(&role)
    .fetch_one(&mut eu)
    .await
    .unwrap();
    assert_eq!(left, 0);

    // No password was ever printed.
    let printed = env.printed.lock().unwrap().clone();
    assert!(
        !printed.contains(&password),
        "a tenant password was printed"
    );
}

fn add_migration(app: &Path, version: u32, sql: &str) {
    for engine in ["sqlite", "postgres"] {
        std::fs::write(
            app.join(format!("migrations/{engine}/{version:04}_loyalty.sql")),
            sql,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_migration_isolates_a_broken_tenant_and_resumes() {
    let Some(c) = cluster().await else { return };
    let env = new_env();
    write_config(&env, &c);
    // 200 tenants of mixed isolation, queued and then run by one worker pass.
    let mut slugs = Vec::new();
    for i in 0..200 {
        let (plan, region) = match i % 10 {
            0..=5 => ("standard", if i % 2 == 0 { "eu-west" } else { "us-east" }),
            6..=8 => ("business", "eu-west"),
            _ => ("premium", "us-east"),
        };
        let slug = format!("t{i:03}");
        env.ok(&[
            "tenant",
            "create",
            &slug,
            "--plan",
            plan,
            "--region",
            region,
            "--no-wait",
        ]);
        slugs.push(slug);
    }
    env.ok(&["ops", "resume"]);
    let tenants = env.json(&["tenant", "list"]);
    assert_eq!(tenants.as_array().unwrap().len(), 200);
    assert!(
        tenants
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "active")
    );

    add_migration(
        &env.path().join("app"),
        5,
        "CREATE TABLE loyalty_points (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, points BIGINT NOT NULL DEFAULT 0);",
    );
    // Break one schema tenant on purpose: the table the migration creates already exists.
    let broken = env.tenant("t006");
    assert_eq!(broken["isolation"], "schema");
    let schema = broken["space"]["schema"].as_str().unwrap();
    let mut eu = connect(&url_for(
        &c.eu1.url,
        broken["space"]["database"].as_str().unwrap(),
    ))
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".loyalty_points (x int)"
    )))
    .execute(&mut eu)
    .await
    .unwrap();

    let dry = env.json(&["migrate", "--dry-run"]);
    assert!(
        dry.as_array()
            .unwrap()
            .iter()
            .all(|r| r["migrations"].as_array().is_some_and(|m| m.len() == 1))
    );

    let out = env.cmd(&["migrate", "--concurrency", "4", "--output", "json"]);
    assert!(
        !out.status.success(),
        "a broken tenant makes the command fail"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("t006"),
        "the broken tenant is named: {stderr}"
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["label"], "t006");
    let tenants = env.json(&["tenant", "list"]);
    let at5 = tenants
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["schema_version"] == 5)
        .count();
    assert_eq!(at5, 199);

    // Repair and run again: only the repaired tenant is touched.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP TABLE \"{schema}\".loyalty_points"
    )))
    .execute(&mut eu)
    .await
    .unwrap();
    let results = env.json(&["migrate", "--concurrency", "4"]);
    let migrated: Vec<&Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "migrated")
        .collect();
    assert_eq!(migrated.len(), 1);
    assert_eq!(migrated[0]["label"], "t006");
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] != "failed")
    );
    let tenants = env.json(&["tenant", "list"]);
    assert!(
        tenants
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["schema_version"] == 5)
    );
    let _: PathBuf = env.path().to_path_buf();
}
