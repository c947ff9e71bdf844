//! Delegated set-up (seed 003): a region that names a data plane has it create and migrate its
//! new tenants' spaces; calls that are not signed with the shared secret, stale or replayed are
//! refused and create nothing.

mod common;

use common::{Env, database_file_name, make_test_env, make_test_env_with, stderr_of};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use tenantry_dataplane::signature::{SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER};

const SECRET: &str = "a-data-plane-secret-of-at-least-32-chars";

/// What serves as the region's data plane.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `tenantry data-plane`: the endpoint alone.
    DataPlane,
    /// `tenantry storefront --data-plane`: the application, which also sets up new tenants.
    Storefront,
}

/// A data plane on a free port, stopped when dropped.
struct DataPlane {
    child: Child,
    base: String,
}

impl DataPlane {
    fn start(env: &Env, kind: Kind) -> DataPlane {
        let (args, ready): (&[&str], _) = match kind {
            Kind::DataPlane => (&["data-plane"], "tenantry data plane on "),
            Kind::Storefront => (&["storefront", "--data-plane"], "tenantry storefront on "),
        };
        let mut child = env
            .command_std()
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--region", "eu-west"])
            .env("TENANTRY_DATA_PLANE_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the data plane");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the data plane printed its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix(ready) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        DataPlane { child, base }
    }

    /// As the storefront: a request of `tenant`'s, answered with its status and body.
    async fn shop(
        &self,
        tenant: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("x-tenant", tenant);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points region eu-west at the data plane.
fn delegate(env: &Env, base: &str) {
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let text = text.replacen(
        "shared_shard = \"eu-west-1\"",
        &format!("shared_shard = \"eu-west-1\"\ndata_plane = \"{base}\""),
        1,
    );
    env.replace_config(&text);
}

fn database_file(env: &Env, tenant_id: &str) -> PathBuf {
    env.shard_dir("eu-west-1")
        .join(database_file_name(tenant_id))
}

/// An initialize request body for a database tenant of eu-west-1.
fn body(env: &Env, tenant_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "tenantId": tenant_id,
        "space": { "kind": "database", "shard": "eu-west-1", "path": database_file(env, tenant_id) },
        "nonce": uuid::Uuid::new_v4().to_string(),
    }))
    .unwrap()
}

async fn post(
    base: &str,
    body: &[u8],
    timestamp: Option<i64>,
    signature: Option<String>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/internal/database/initialize"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(ts) = timestamp {
        request = request.header(TIMESTAMP_HEADER, ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header(SIGNATURE_HEADER, sig);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_region_with_a_data_plane_has_it_set_up_new_tenants() {
    sets_up_new_tenants(Kind::DataPlane).await;
}

#[tokio::test]
async fn a_storefront_started_as_the_data_plane_sets_up_new_tenants_and_serves_them() {
    let (env, plane) = sets_up_new_tenants(Kind::Storefront).await;
    let customer = json!({ "email": "wile@acme.example" });
    let (status, body) = plane
        .shop("acme", reqwest::Method::POST, "/customers", Some(customer))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, summary) = plane
        .shop("acme", reqwest::Method::GET, "/summary", None)
        .await;
    assert_eq!(
        (status, summary["customers"].as_i64()),
        (200, Some(1)),
        "{summary}"
    );
    // Its keys in Redis have a prefix of its own, shown with it.
    let acme = env.show("acme");
    let simple = acme["id"].as_str().unwrap().replace('-', "");
    assert_eq!(acme["redis_prefix"], format!("tenantry:{simple}:"));
    // The tenant whose set-up was refused has nothing to serve.
    let (status, body) = plane
        .shop("initech", reqwest::Method::GET, "/summary", None)
        .await;
    assert_eq!(status, 409, "{body}");
    drop(env);
}

/// Provisions a tenant whose set-up `kind` refuses (a foreign signature) and one it does.
async fn sets_up_new_tenants(kind: Kind) -> (Env, DataPlane) {
    let env = make_test_env();
    let plane = DataPlane::start(&env, kind);
    delegate(&env, &plane.base);

    // Signed with another secret: the data plane refuses, provisioning fails and says why.
    let out = env
        .command()
        .args([
            "tenant", "create", "initech", "--plan", "premium", "--region", "eu-west",
        ])
        .env(
            "TENANTRY_DATA_PLANE_SECRET",
            "not-the-secret-the-data-plane-has!!",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("refused the request (401)") && err.contains("signature does not match"),
        "{err}"
    );
    let failed = env.show("initech");
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(!database_file(&env, failed["id"].as_str().unwrap()).exists());

    // With the shared secret: the data plane creates and migrates the database.
    let tenant = {
        let out = env
            .command()
            .args([
                "tenant", "create", "acme", "--plan", "premium", "--region", "eu-west", "-o",
                "json",
            ])
            .env("TENANTRY_DATA_PLANE_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(tenant["state"], "active", "{tenant:#}");
    assert_eq!(tenant["isolation"], "database");
    let file = database_file(&env, tenant["id"].as_str().unwrap());
    assert!(file.is_file(), "{} is missing", file.display());
    assert_eq!(tenant["schema_version"], 4, "{tenant:#}");
    // The steps ran; `migrate` found the data plane's work done.
    let ops = env.json(&["ops", "list", "--tenant", "acme"]);
    assert_eq!(ops[0]["state"], "succeeded", "{ops:#}");
    (env, plane)
}

#[tokio::test]
async fn unsigned_foreign_stale_or_replayed_calls_are_refused_and_create_nothing() {
    refuses_what_is_not_signed(Kind::DataPlane).await;
}

#[tokio::test]
async fn a_storefront_as_data_plane_refuses_what_is_not_signed_and_creates_nothing() {
    refuses_what_is_not_signed(Kind::Storefront).await;
}

async fn refuses_what_is_not_signed(kind: Kind) {
    let env = make_test_env();
    let plane = DataPlane::start(&env, kind);
    let signer = Signer::new(SecretString::from(SECRET.to_owned())).unwrap();
    let foreign = Signer::new(SecretString::from("x".repeat(40))).unwrap();
    let now = chrono::Utc::now().timestamp();

    let tenant = uuid::Uuid::now_v7().to_string();
    let request = body(&env, &tenant);
    for (label, ts, sig) in [
        ("unsigned", None, None),
        (
            "another secret",
            Some(now),
            Some(foreign.sign(now, &request)),
        ),
        (
            "stale",
            Some(now - 3600),
            Some(signer.sign(now - 3600, &request)),
        ),
        ("another body", Some(now), Some(signer.sign(now, b"{}"))),
    ] {
        let (status, problem) = post(&plane.base, &request, ts, sig).await;
        assert_eq!(status, 401, "{label}: {problem}");
        assert!(problem["detail"].is_string(), "{label}: {problem}");
        assert!(!database_file(&env, &tenant).exists(), "{label} created it");
    }

    // Signed: created and migrated, its credentials sealed (a SQLite file has none).
    let signature = signer.sign(now, &request);
    let (status, answer) = post(&plane.base, &request, Some(now), Some(signature.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["schemaVersion"], 4);
    assert!(database_file(&env, &tenant).is_file());

    // The same request again is a replay.
    let (status, problem) = post(&plane.base, &request, Some(now), Some(signature)).await;
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{problem}"
    );

    // A signed request for a place the driver would not give the tenant creates nothing.
    let other = uuid::Uuid::now_v7().to_string();
    let elsewhere = serde_json::to_vec(&json!({
        "tenantId": other,
        "space": { "kind": "database", "shard": "eu-west-1", "path": "/tmp/elsewhere.db" },
        "nonce": "n",
    }))
    .unwrap();
    let (status, problem) = post(
        &plane.base,
        &elsewhere,
        Some(now),
        Some(signer.sign(now, &elsewhere)),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(!std::path::Path::new("/tmp/elsewhere.db").exists());
    assert!(!database_file(&env, &other).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedicated_postgres_database_comes_back_with_sealed_credentials_that_work() {
    let Some(server) = tenantry_testkit::postgres::TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let plane = DataPlane::start(&env, Kind::DataPlane);
    delegate(&env, &plane.base);
    let out = env
        .command()
        .args([
            "tenant", "create", "globex", "--plan", "premium", "--region", "eu-west", "-o", "json",
        ])
        .env("TENANTRY_DATA_PLANE_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let tenant: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tenant["state"], "active", "{tenant:#}");
    assert_eq!(tenant["isolation"], "database");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(!printed.contains("password"), "{printed}");

    // The catalog keeps what the data plane sealed; opened with the master key, it logs in to
    // the tenant's own database.
    let config = tenantry_core::config::Config::load(&env.config_path()).unwrap();
    let key = tenantry_orchestrator::service::load_master_key(&config)
        .unwrap()
        .unwrap();
    let catalog = tenantry_catalog::open(&config.catalog.url).await.unwrap();
    let id: tenantry_core::TenantId = serde_json::from_value(tenant["id"].clone()).unwrap();
    let sealed = catalog
        .secret(id, "database")
        .await
        .unwrap()
        .expect("sealed credentials");
    let credentials: Value =
        serde_json::from_slice(&key.open(&id.to_string(), &sealed).unwrap()).unwrap();
    let database = tenant["space"]["database"].as_str().unwrap();
    assert_eq!(credentials["role"], database);
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/{database}",
        database,
        credentials["password"].as_str().unwrap(),
        server.port
    );
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Migrated by the data plane, seeded by the control plane; the ledgers stay out of reach.
    let settings: i64 = sqlx::query_scalar("SELECT count(*) FROM store_settings")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(settings, 1);
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storefront_data_plane_on_postgres_sets_up_a_dedicated_tenant_and_serves_it_beside_a_shared_one()
 {
    let Some(server) = tenantry_testkit::postgres::TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let plane = DataPlane::start(&env, Kind::Storefront);
    delegate(&env, &plane.base);
    for (slug, plan) in [("globex", "premium"), ("hooli", "standard")] {
        let out = env
            .command()
            .args([
                "tenant", "create", slug, "--plan", plan, "--region", "eu-west",
            ])
            .env("TENANTRY_DATA_PLANE_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    assert_eq!(env.show("globex")["isolation"], "database");
    assert_eq!(env.show("hooli")["isolation"], "shared");
    // The storefront reaches the dedicated database with the tenant's own sealed credentials,
    // and the shared one under row-level security; each sees its own customer only.
    for slug in ["globex", "hooli"] {
        let customer = json!({ "email": format!("first@{slug}.example") });
        let (status, body) = plane
            .shop(slug, reqwest::Method::POST, "/customers", Some(customer))
            .await;
        assert_eq!(status, 201, "{slug}: {body}");
    }
    for slug in ["globex", "hooli"] {
        let (_, customers) = plane
            .shop(slug, reqwest::Method::GET, "/customers", None)
            .await;
        let emails: Vec<&str> = customers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, [format!("first@{slug}.example")], "{slug}");
    }
}
