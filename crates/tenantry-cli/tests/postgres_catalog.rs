//! The catalog on PostgreSQL: crashes at every provisioning step are resumed exactly once, and
//! two `tenantry serve` workers share 200 queued provisionings — one of them killed halfway —
//! each provisioned exactly once.

mod common;

use common::{PROVISIONED, make_test_env};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tenantry_testkit::postgres::TestDatabase;

/// Points the environment's catalog at a fresh PostgreSQL database.
fn use_postgres_catalog(env: &common::Env, db: &TestDatabase) {
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let config = config.replace(
        "url = \"sqlite://data/catalog.db\"",
        &format!("url = \"{}\"", db.url),
    );
    env.replace_config(&config);
}

/// A fresh catalog database (created from synchronous test code).
fn catalog_database(prefix: &str) -> Option<TestDatabase> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDatabase::create(prefix))
}

#[test]
fn a_crash_at_any_provisioning_step_is_resumed_exactly_once() {
    let Some(db) = catalog_database("crash") else {
        return;
    };
    let env = make_test_env();
    use_postgres_catalog(&env, &db);
    let steps = env.steps("provision");
    let mut n = 0;
    for step in &steps {
        for point in ["before", "after"] {
            n += 1;
            let slug = format!("t{n:02}");
            let (plan, region) = if n % 2 == 0 {
                ("premium", "us-east")
            } else {
                ("standard", "eu-west")
            };
            let out = env.tenantry_with_failpoints(
                &format!("{step}.{point}=crash"),
                [
                    "tenant", "create", &slug, "--plan", plan, "--region", region,
                ],
            );
            assert!(!out.status.success(), "{step}.{point} did not crash");
            env.tenantry(["ops", "resume"]).success();
            let t = env.show(&slug);
            assert_eq!(t["state"], "active", "{step}.{point}: {t}");
            assert_eq!(env.event_types(&slug), PROVISIONED, "{step}.{point}");
            assert!(env.storage_folder(&t).is_dir(), "{step}.{point}");
            let path = common::space_path(&t);
            assert_eq!(
                common::admin_count(&path, t["id"].as_str().unwrap()),
                1,
                "{step}.{point}"
            );
        }
    }
}

fn serve(env: &common::Env) -> Child {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("tenantry"))
        .current_dir(env.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("tenantry serving") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn two_workers_share_200_provisionings_and_survive_losing_one() {
    let Some(db) = catalog_database("workers") else {
        return;
    };
    let env = make_test_env();
    use_postgres_catalog(&env, &db);
    const N: usize = 200;
    for i in 0..N {
        let plan = if i % 4 == 0 { "premium" } else { "standard" };
        env.tenantry([
            "tenant",
            "create",
            &format!("w{i:03}"),
            "--plan",
            plan,
            "--region",
            "eu-west",
            "--no-wait",
        ])
        .success();
    }
    let mut a = serve(&env);
    let mut b = serve(&env);
    let active = |env: &common::Env| {
        common::as_array(env.json(&["tenant", "list", "--state", "active"])).len()
    };
    // A safety net, not a measure: generous, since CI machines may be busy.
    let deadline = Instant::now() + Duration::from_secs(360);
    while active(&env) < N / 2 {
        assert!(Instant::now() < deadline, "workers made no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    a.kill().unwrap();
    a.wait().unwrap();
    while active(&env) < N {
        if Instant::now() >= deadline {
            // Say which tenants did not make it, and why, before failing.
            let stuck: Vec<String> = common::as_array(env.json(&["tenant", "list"]))
                .into_iter()
                .filter(|t| t["state"] != "active")
                .map(|t| format!("{} {} {}", t["slug"], t["state"], t["failure"]))
                .collect();
            let open: Vec<String> = common::as_array(env.json(&["ops", "list", "--limit", "500"]))
                .into_iter()
                .filter(|op| op["state"] != "succeeded")
                .map(|op| {
                    format!(
                        "{} {} {} {}",
                        op["id"], op["state"], op["lease_owner"], op["error"]
                    )
                })
                .collect();
            panic!(
                "only {} of {N} became active; not active: {stuck:?}; unfinished operations: {open:?}",
                active(&env)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    b.kill().unwrap();
    b.wait().unwrap();
    // Each tenant was provisioned exactly once: one of each provisioning event, one
    // transition of each kind, one space with one admin.
    let events = common::as_array(env.json(&["events", "list", "--limit", "100000"]));
    let mut per_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        per_tenant
            .entry(e["tenant_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["event_type"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_tenant.len(), N);
    for types in per_tenant.values() {
        assert_eq!(types, PROVISIONED);
    }
    let ops = env.operations();
    assert!(ops.iter().all(|o| o["state"] == "succeeded"));
    let mut owners = std::collections::BTreeSet::new();
    for t in common::as_array(env.json(&["tenant", "list"])) {
        let path = common::space_path(&t);
        assert_eq!(common::admin_count(&path, t["id"].as_str().unwrap()), 1);
        owners.insert(t["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(owners.len(), N);
}

/// Counts of the tenant's admin users and store settings in its PostgreSQL space, or `None`
/// when the space does not exist.
fn pg_counts(
    rt: &tokio::runtime::Runtime,
    server: &str,
    tenant: &serde_json::Value,
) -> Option<(i64, i64)> {
    use sqlx::Connection;
    let db = tenant["space"]["database"].as_str()?;
    let url = tenantry_testkit::postgres::url_for(server, db);
    let id = tenant["id"].as_str().unwrap().to_owned();
    rt.block_on(async move {
        let mut conn = sqlx::PgConnection::connect(&url).await.ok()?;
        let admins: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'admin'",
        )
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .ok()?;
        let settings: i64 =
            sqlx::query_scalar("SELECT count(*) FROM store_settings WHERE tenant_id = $1")
                .bind(&id)
                .fetch_one(&mut conn)
                .await
                .ok()?;
        Some((admins, settings))
    })
}

#[test]
fn crashes_and_failures_on_postgres_spaces_are_resumed_or_rolled_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(TestDatabase::create("pgcrash")) else {
        return;
    };
    let Some(server) = rt.block_on(tenantry_testkit::postgres::TestServer::start()) else {
        return;
    };
    let env = make_test_env();
    use_postgres_catalog(&env, &db);
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let config = config
        .replace(
            "engine = \"sqlite\"\ndirectory = \"data/shards/eu-west-1\"",
            &format!("engine = \"postgres\"\nurl = \"{}\"", server.url),
        )
        .replace(
            "engine = \"sqlite\"\ndirectory = \"data/shards/us-east-1\"",
            &format!("engine = \"postgres\"\nurl = \"{}\"", server.url),
        );
    env.replace_config(&config);
    let steps = env.steps("provision");
    let mut n = 0;
    for step in &steps {
        for point in ["before", "after"] {
            for (plan, region) in [("standard", "eu-west"), ("premium", "us-east")] {
                n += 1;
                let slug = format!("c{n:02}");
                let out = env.tenantry_with_failpoints(
                    &format!("{step}.{point}=crash"),
                    [
                        "tenant", "create", &slug, "--plan", plan, "--region", region,
                    ],
                );
                assert!(!out.status.success(), "{step}.{point} did not crash");
                env.tenantry(["ops", "resume"]).success();
                let t = env.show(&slug);
                assert_eq!(t["state"], "active", "{step}.{point} {plan}: {t}");
                assert_eq!(env.event_types(&slug), PROVISIONED, "{step}.{point} {plan}");
                assert_eq!(
                    pg_counts(&rt, &server.url, &t),
                    Some((1, 1)),
                    "{step}.{point} {plan}"
                );
            }
        }
        // A permanent failure rolls everything back.
        for (plan, region) in [("standard", "eu-west"), ("premium", "us-east")] {
            n += 1;
            let slug = format!("e{n:02}");
            let out = env.tenantry_with_failpoints(
                &format!("{step}=error"),
                [
                    "tenant", "create", &slug, "--plan", plan, "--region", region,
                ],
            );
            assert!(!out.status.success(), "{step}=error succeeded");
            let t = env.show(&slug);
            assert_eq!(t["state"], "failed", "{step}=error {plan}");
            assert_eq!(t["failure"]["step"], step.as_str());
            assert!(
                !env.storage_folder(&t).exists(),
                "{step}=error {plan}: storage left"
            );
            let placed = env
                .steps("provision")
                .iter()
                .position(|s| s == "place")
                .unwrap();
            let idx = steps.iter().position(|s| s == step).unwrap();
            if idx > placed {
                // The space was located: it must be gone (database) or hold no rows of the tenant.
                let mut probe = t.clone();
                let planned = if plan == "premium" {
                    format!("tenant_{}", t["id"].as_str().unwrap().replace('-', ""))
                } else {
                    "tenantry_shared_eu_west".to_owned()
                };
                probe["space"] = serde_json::json!({ "database": planned });
                let left = pg_counts(&rt, &server.url, &probe);
                assert!(
                    matches!(left, None | Some((0, 0))),
                    "{step}=error {plan}: {left:?}"
                );
            }
        }
    }
}
