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
    let deadline = Instant::now() + Duration::from_secs(120);
    while active(&env) < N / 2 {
        assert!(Instant::now() < deadline, "workers made no progress");
        std::thread::sleep(Duration::from_millis(200));
    }
    a.kill().unwrap();
    a.wait().unwrap();
    while active(&env) < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} became active",
            active(&env)
        );
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
