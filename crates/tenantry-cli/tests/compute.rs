//! Dedicated compute on the process runtime, licences, plan changes and the tenant reconciler,
//! on the embedded default (SQLite, local files): a dedicated tenant's storefront is a process
//! of its own that answers on its own port with its own data, follows the tenant's lifecycle,
//! and comes back when killed; each drift made by hand is repaired (or, for a lost database,
//! reported) by one reconcile pass, and the next pass finds nothing.

mod common;

use common::server::Server;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "process {pid} survived kill -9");
}

/// `GET /api/v1/reconciliation` of a running `tenantry serve`: its last tenant reconcile pass.
async fn last_reconciliation(env: &Env, server: &Server) -> Value {
    let reader = env.json(&["token", "create", "--scope", "reader", "--name", "watcher"]);
    http()
        .get(server.url("/api/v1/reconciliation"))
        .bearer_auth(reader["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn emails(endpoint: &str, header_tenant: Option<&str>) -> Vec<String> {
    let mut request = http().get(format!("{endpoint}/customers"));
    if let Some(t) = header_tenant {
        request = request.header("x-tenant", t);
    }
    let answer: Value = request
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out: Vec<String> = answer
        .as_array()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

async fn add_customer(endpoint: &str, header_tenant: Option<&str>, email: &str) {
    let mut request = http()
        .post(format!("{endpoint}/customers"))
        .json(&json!({ "email": email }));
    if let Some(t) = header_tenant {
        request = request.header("x-tenant", t);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn a_dedicated_tenant_runs_its_own_storefront_process_through_its_lifecycle() {
    let env = make_test_env();
    let acme = env.create("acme", "enterprise", "eu-west", &[]);
    env.create("hooli", "standard", "eu-west", &[]);
    assert_eq!(acme["compute"], "dedicated", "{acme:#}");

    // Running, health-checked before it turned active, on a port of its own.
    let compute = compute_of(&env, "acme");
    assert_eq!(
        (&compute["runtime"], &compute["state"]),
        (&json!("process"), &json!("running")),
        "{compute:#}"
    );
    let endpoint = compute["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let pid = pid_of(&compute);
    assert_eq!(compute_of(&env, "hooli")["state"], Value::Null);

    // Its environment: its id, prefixes, its database and its licence.
    let id = str_of(&acme, "id");
    let vars = environ(pid);
    assert_eq!(vars["TENANT_ID"], id);
    assert_eq!(vars["TENANT_SLUG"], "acme");
    assert_eq!(
        vars["REDIS_PREFIX"],
        format!("tenantry:{}:", id.replace('-', ""))
    );
    assert!(
        vars["STORAGE_PREFIX"].ends_with(&format!("eu-west/tenants/{id}/")),
        "{}",
        vars["STORAGE_PREFIX"]
    );
    assert!(vars["DATABASE_URL"].starts_with("sqlite://"), "{vars:?}");
    assert!(vars["TENANTRY_LICENCE"].contains('.'));
    let licence = env.json(&["tenant", "licence", "acme"]);
    assert_eq!(licence["valid"], true, "{licence:#}");
    assert_eq!(licence["licence"]["plan"], "enterprise");
    assert_eq!(licence["licence"]["limits"]["compute"], "dedicated");
    assert_eq!(vars["TENANTRY_LICENCE_PUBLIC_KEY"], licence["public_key"]);

    // Its own data only: whatever tenant a request names, the process serves acme.
    add_customer(&endpoint, None, "ann@acme.test").await;
    add_customer(&endpoint, Some("hooli"), "bob@acme.test").await;
    assert_eq!(
        emails(&endpoint, Some("hooli")).await,
        ["ann@acme.test", "bob@acme.test"]
    );
    let tenant_rows = |slug: &str| {
        env.json(&["tenant", "stats", slug, "--refresh"])["rows"]["customers"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((tenant_rows("acme"), tenant_rows("hooli")), (2, 0));

    // The licence and the database URL are never printed.
    let shown = env.tenantry(["tenant", "show", "acme"]).success();
    let out = String::from_utf8_lossy(&shown.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&shown.get_output().stderr);
    assert!(!out.contains(&vars["TENANTRY_LICENCE"]), "{out}");
    assert!(out.contains("running"), "{out}");

    // Suspend stops it; resume starts it again (on the same port), with its data.
    env.tenantry(["tenant", "suspend", "acme"]).success();
    assert!(!alive(pid), "suspend left process {pid} running");
    assert_eq!(compute_of(&env, "acme")["state"], "stopped");
    assert!(
        http()
            .get(format!("{endpoint}/healthz"))
            .send()
            .await
            .is_err()
    );
    env.tenantry(["tenant", "resume", "acme"]).success();
    let resumed = compute_of(&env, "acme");
    assert_eq!(resumed["state"], "running", "{resumed:#}");
    assert_eq!(resumed["endpoint"], endpoint.as_str());
    assert_eq!(
        emails(&endpoint, None).await,
        ["ann@acme.test", "bob@acme.test"]
    );

    // Killed, the reconciler of `tenantry serve` brings it back within one interval.
    let server = Server::start(&env, &[("TENANTRY_RECONCILER__INTERVAL_SECS", "1")]);
    let killed = pid_of(&resumed);
    kill(killed);
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = loop {
        let compute = compute_of(&env, "acme");
        if compute["state"] == "running" {
            break compute;
        }
        assert!(Instant::now() < deadline, "not restarted: {compute:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(pid_of(&back), killed);
    assert_eq!(
        emails(&endpoint, None).await,
        ["ann@acme.test", "bob@acme.test"]
    );
    let report = last_reconciliation(&env, &server).await;
    assert!(report["drifts"].is_array(), "{report:#}");
    let events = env.events("acme");
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "DriftRepaired" && e["payload"]["kind"] == "compute_down"),
        "{events:#?}"
    );
    drop(server);

    // Delete removes it: process gone, its folder gone.
    let running = pid_of(&compute_of(&env, "acme"));
    env.tenantry(["tenant", "delete", "acme"]).success();
    assert!(!alive(running), "delete left process {running} running");
    assert!(!env.data_dir().join("compute").join(&id).exists());
}

#[test]
fn a_plan_change_reissues_the_licence_and_starts_or_removes_dedicated_compute() {
    let env = make_test_env();
    env.create("acme", "premium", "eu-west", &[]);
    assert_eq!(compute_of(&env, "acme")["state"], Value::Null);
    let before = env.json(&["tenant", "licence", "acme"]);
    assert_eq!(before["licence"]["plan"], "premium");

    // premium → enterprise: same isolation, dedicated compute: an update.
    let updated = env.json(&["tenant", "update", "acme", "--plan", "enterprise"]);
    assert_eq!(updated["operation"]["kind"], "update", "{updated:#}");
    assert_eq!(updated["tenant"]["plan"], "enterprise");
    assert_eq!(updated["tenant"]["compute"], "dedicated");
    let licence = env.json(&["tenant", "licence", "acme"]);
    assert_eq!(
        (
            &licence["licence"]["plan"],
            &licence["licence"]["limits"]["storage_quota_mb"]
        ),
        (&json!("enterprise"), &json!(204800)),
        "{licence:#}"
    );
    let compute = compute_of(&env, "acme");
    assert_eq!(compute["state"], "running", "{compute:#}");
    let pid = pid_of(&compute);
    let shown = env.show("acme");
    assert_eq!(shown["storage"]["quota_mb"], 204800);

    // The same plan again changes nothing.
    let same = env.json(&["tenant", "update", "acme", "--plan", "enterprise"]);
    assert_eq!(same["operation"], Value::Null, "{same:#}");

    // Back to premium: shared compute, the process removed.
    env.json(&["tenant", "update", "acme", "--plan", "premium"]);
    assert!(
        !alive(pid),
        "the process of a tenant back on shared compute runs on"
    );
    assert_eq!(compute_of(&env, "acme")["state"], Value::Null);
    assert!(
        !env.data_dir()
            .join("compute")
            .join(str_of(&shown, "id"))
            .exists()
    );

    // An unknown plan is refused, naming the known ones; nothing changes.
    let refused = env
        .tenantry(["tenant", "update", "acme", "--plan", "platinum"])
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("no plan \"platinum\"") && stderr.contains("enterprise"),
        "{stderr}"
    );
    assert_eq!(env.show("acme")["plan"], "premium");
}

fn drifts(report: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = report["tenants"]["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (str_of(d, "slug"), str_of(d, "kind"), str_of(d, "outcome")))
        .collect();
    out.sort();
    out
}

fn drift(slug: &str, kind: &str, outcome: &str) -> (String, String, String) {
    (slug.into(), kind.into(), outcome.into())
}

async fn catalog(env: &Env) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(env.data_dir().join("catalog.db"))
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_drift_made_by_hand_is_repaired_by_one_pass_and_the_next_finds_nothing() {
    let env = make_test_env();
    env.create("acme", "enterprise", "eu-west", &[]);
    let beta = env.create("beta", "standard", "eu-west", &[]);
    let gone = env.create("gone", "premium", "us-east", &[]);
    let sus = env.create("sus", "enterprise", "us-east", &[]);
    env.tenantry(["tenant", "suspend", "sus"]).success();
    let old = env.create("old", "standard", "eu-west", &[]);
    env.tenantry(["tenant", "delete", "old"]).success();

    let clean = env.json(&["reconcile"]);
    assert_eq!(drifts(&clean), [], "{clean:#}");

    // By hand: a new migration (every space behind), beta's storage and licence removed,
    // acme's process killed, a deleted tenant's storage back, and gone's database file removed.
    let migrations = env.path().join("app/migrations/sqlite");
    let latest = std::fs::read_dir(&migrations)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .split('_')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap();
    std::fs::write(
        migrations.join(format!("{:04}_loyalty.sql", latest + 1)),
        "CREATE TABLE loyalty_points (customer_id TEXT NOT NULL, points INTEGER NOT NULL);\n",
    )
    .unwrap();
    std::fs::remove_dir_all(env.storage_folder(&beta)).unwrap();
    kill(pid_of(&compute_of(&env, "acme")));
    let mut db = catalog(&env).await;
    sqlx::query("DELETE FROM tenant_secrets WHERE tenant_id = ? AND name = 'licence'")
        .bind(str_of(&beta, "id"))
        .execute(&mut db)
        .await
        .unwrap();
    std::fs::create_dir_all(env.storage_folder(&old)).unwrap();
    std::fs::write(env.storage_folder(&old).join("_tenantry.json"), "{}").unwrap();
    std::fs::remove_file(space_path(&gone)).unwrap();

    let dry = env.json(&["reconcile", "--dry-run"]);
    assert!(
        dry["tenants"]["drifts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["outcome"] == "planned"),
        "{dry:#}"
    );

    let out = env
        .command()
        .args(["--output", "json", "reconcile"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a lost database makes the pass fail");
    let pass = parse_json(&out.stdout, &["reconcile"]);
    let mut expected = vec![
        drift("acme", "compute_down", "repaired"),
        drift("acme", "space_behind", "repaired"),
        drift("beta", "licence_missing", "repaired"),
        drift("beta", "space_behind", "repaired"),
        drift("beta", "storage_missing", "repaired"),
        drift("gone", "database_missing", "reported"),
        drift("old", "leftovers", "repaired"),
        drift("sus", "space_behind", "repaired"),
    ];
    expected.sort();
    assert_eq!(drifts(&pass), expected, "{pass:#}");
    assert!(
        stderr_of(&out).contains("gone (database_missing)"),
        "{}",
        stderr_of(&out)
    );

    // Repaired: versions, storage, licence, compute, leftovers; gone is failed with its loss.
    for slug in ["acme", "beta", "sus"] {
        let shown = env.show(slug);
        assert_eq!(
            shown["schema_version"].as_i64(),
            Some(i64::from(latest) + 1),
            "{shown:#}"
        );
    }
    assert!(env.storage_folder(&beta).join("_tenantry.json").exists());
    assert_eq!(env.json(&["tenant", "licence", "beta"])["valid"], true);
    assert_eq!(compute_of(&env, "acme")["state"], "running");
    assert_eq!(compute_of(&env, "sus")["state"], "stopped");
    assert!(!env.storage_folder(&old).exists());
    let lost = env.show("gone");
    assert_eq!(lost["state"], "failed", "{lost:#}");
    assert!(
        lost["failure"]["error"]
            .as_str()
            .unwrap()
            .contains("data loss"),
        "{lost:#}"
    );
    assert!(
        !space_path(&gone).exists(),
        "a lost database is never recreated empty"
    );
    let detected: Vec<Value> = env
        .events("gone")
        .into_iter()
        .filter(|e| e["event_type"] == "DriftDetected")
        .collect();
    assert_eq!(detected.len(), 1, "{detected:#?}");
    assert_eq!(detected[0]["payload"]["data_loss"], true);
    assert_eq!(
        env.events("beta")
            .iter()
            .filter(|e| e["event_type"] == "DriftRepaired")
            .count(),
        3
    );

    let again = env.json(&["reconcile"]);
    assert_eq!(drifts(&again), [], "{again:#}");

    // Compute of a suspended tenant that runs is stopped; the catalog is the declared state.
    let sus_id = str_of(&sus, "id");
    sqlx::query("UPDATE tenants SET state = 'active' WHERE id = ?")
        .bind(&sus_id)
        .execute(&mut db)
        .await
        .unwrap();
    let started = env.json(&["reconcile"]);
    assert_eq!(drifts(&started), [drift("sus", "compute_down", "repaired")]);
    let pid = pid_of(&compute_of(&env, "sus"));
    sqlx::query("UPDATE tenants SET state = 'suspended' WHERE id = ?")
        .bind(&sus_id)
        .execute(&mut db)
        .await
        .unwrap();
    let stopped = env.json(&["reconcile"]);
    assert_eq!(
        drifts(&stopped),
        [drift("sus", "compute_of_suspended", "repaired")]
    );
    assert!(!alive(pid));
    assert_eq!(drifts(&env.json(&["reconcile"])), []);
}

/// The superuser URL `server` into `database`.
fn admin_url(server: &str, database: &str) -> String {
    let mut url = reqwest::Url::parse(server).unwrap();
    url.set_path(database);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_dedicated_compute_reaches_only_its_own_database_a_lost_role_is_recreated_and_a_lost_database_reported()
 {
    use sqlx::Connection;
    let Some(server) = tenantry_testkit::postgres::TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "enterprise", "eu-west", &[]);
    let globex = env.create("globex", "premium", "eu-west", &[]);
    let compute = compute_of(&env, "acme");
    assert_eq!(compute["state"], "running", "{compute:#}");
    let endpoint = compute["endpoint"].as_str().unwrap().to_owned();
    add_customer(&endpoint, None, "ann@acme.test").await;

    // Its DATABASE_URL carries its own role into its own database, and nowhere else.
    let url = environ(pid_of(&compute))["DATABASE_URL"].clone();
    let database = acme["space"]["database"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://") && url.ends_with(&format!("/{database}")),
        "{url:?}"
    );
    let mut own = sqlx::PgConnection::connect(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(count, 1);
    own.close().await.unwrap();
    let other = globex["space"]["database"].as_str().unwrap();
    let mut elsewhere = reqwest::Url::parse(&url).unwrap();
    elsewhere.set_path(other);
    let elsewhere = elsewhere.to_string();
    assert!(
        sqlx::PgConnection::connect(&elsewhere).await.is_err(),
        "acme's role reached globex's database"
    );
    let shown = env.tenantry(["tenant", "show", "acme"]).success();
    let password = reqwest::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    assert!(
        !String::from_utf8_lossy(&shown.get_output().stdout).contains(&password),
        "the database password was printed"
    );

    // Its role dropped by hand: recreated with a new password (its old one no longer works),
    // granted its tables again, and its compute restarted with the new URL.
    let mut admin = sqlx::PgConnection::connect(&server.url).await.unwrap();
    let mut in_database = sqlx::PgConnection::connect(&admin_url(&server.url, database))
        .await
        .unwrap();
    for statement in [
        format!("DROP OWNED BY \"{database}\""),
        format!("DROP ROLE \"{database}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut in_database)
            .await
            .unwrap();
    }
    in_database.close().await.unwrap();
    let repaired = env.json(&["reconcile"]);
    assert_eq!(
        drifts(&repaired),
        [drift("acme", "role_missing", "repaired")],
        "{repaired:#}"
    );
    let restarted = compute_of(&env, "acme");
    assert_eq!(restarted["state"], "running", "{restarted:#}");
    let new_url = environ(pid_of(&restarted))["DATABASE_URL"].clone();
    assert_ne!(new_url, url, "the recreated role has a new password");
    let mut own = sqlx::PgConnection::connect(&new_url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(count, 1);
    own.close().await.unwrap();
    assert_eq!(emails(&endpoint, None).await, ["ann@acme.test"]);
    assert_eq!(drifts(&env.json(&["reconcile"])), []);

    // Its database dropped by hand: reported as data loss, never recreated; compute stopped.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{database}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let out = env
        .command()
        .args(["--output", "json", "reconcile"])
        .output()
        .unwrap();
    let pass = parse_json(&out.stdout, &["reconcile"]);
    assert_eq!(
        drifts(&pass),
        [drift("acme", "database_missing", "reported")],
        "{pass:#}"
    );
    assert_eq!(env.show("acme")["state"], "failed");
    assert_eq!(compute_of(&env, "acme")["state"], "stopped");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(!exists, "a lost database is never recreated empty");
    assert_eq!(drifts(&env.json(&["reconcile"])), []);
    env.tenantry(["tenant", "delete", "acme"]).success();

    // A plan whose isolation differs is a live move; once there, the reconciler reissues the
    // licence for the tenant's new place.
    env.create("hooli", "business", "eu-west", &[]);
    let moved = env.json(&["tenant", "update", "hooli", "--plan", "premium"]);
    assert_eq!(moved["operation"]["kind"], "move", "{moved:#}");
    assert_eq!(
        (&moved["tenant"]["plan"], &moved["tenant"]["isolation"]),
        (&json!("premium"), &json!("database")),
        "{moved:#}"
    );
    env.tenantry(["tenant", "move", "hooli", "--complete"])
        .success();
    let stale = env.json(&["tenant", "licence", "hooli"]);
    assert_eq!(
        stale["stale"],
        json!(["isolation is schema, the tenant's is database"]),
        "{stale:#}"
    );
    assert_eq!(
        drifts(&env.json(&["reconcile"])),
        [drift("hooli", "licence_missing", "repaired")]
    );
    let licence = env.json(&["tenant", "licence", "hooli"]);
    assert_eq!(
        (
            &licence["licence"]["plan"],
            &licence["licence"]["limits"]["isolation"]
        ),
        (&json!("premium"), &json!("database")),
        "{licence:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_is_reconciled_in_slices_each_tenant_in_turn() {
    let env = make_test_env();
    let tenants: Vec<Value> = ["t-a", "t-b", "t-c"]
        .iter()
        .map(|slug| env.create(slug, "standard", "eu-west", &[]))
        .collect();
    for tenant in &tenants {
        std::fs::remove_dir_all(env.storage_folder(tenant)).unwrap();
    }
    // One tenant a pass, a pass a second: the three are repaired over three passes.
    let server = Server::start(
        &env,
        &[
            ("TENANTRY_RECONCILER__INTERVAL_SECS", "1"),
            ("TENANTRY_RECONCILER__TENANTS_PER_PASS", "1"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tenants.iter().all(|t| env.storage_folder(t).exists()) {
        assert!(Instant::now() < deadline, "not every tenant was repaired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = last_reconciliation(&env, &server).await;
    assert_eq!(report["tenants"], 1, "{report:#}");
    let repaired: Vec<String> = tenants
        .iter()
        .flat_map(|t| env.events(&str_of(t, "slug")))
        .filter(|e| e["event_type"] == "DriftRepaired")
        .map(|e| str_of(&e["payload"], "kind"))
        .collect();
    assert_eq!(repaired, ["storage_missing"; 3]);
}
