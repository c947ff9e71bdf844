//! `tenantry tenant move` on the embedded default: a tenant's rows move live from the shared
//! SQLite file into a file of its own while a plain SQL writer keeps inserting and deleting its
//! customers, then roll back (carrying home what was written at the new place), move again,
//! complete, and move its file to another SQLite shard. After each phase the tenant's rows are
//! exactly what the writer committed — counted from its own ledger, not by the move's
//! verifier — and the neighbour's rows never change.

mod common;

use common::*;
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn open(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

async fn add_customer(conn: &mut SqliteConnection, tenant: &str, email: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO customers (id, tenant_id, email) VALUES (?, ?, ?)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(tenant)
        .bind(email)
        .execute(&mut *conn)
        .await
        .map(drop)
}

async fn emails(path: &Path, tenant: &str) -> BTreeSet<String> {
    let mut conn = open(path).await;
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM customers WHERE tenant_id = ?")
        .bind(tenant)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    emails.into_iter().collect()
}

/// The tenant's rows in the file at `path`, over every table with a `tenant_id` (a move's own
/// registry and change log left out).
async fn tenant_rows(path: &Path, tenant: &str) -> i64 {
    let mut conn = open(path).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'
           AND m.name NOT LIKE 'tenantry_move_%' AND EXISTS (
             SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant_id')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut rows = 0;
    for table in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{table}\" WHERE tenant_id = ?"
        )))
        .bind(tenant)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        rows += n;
    }
    conn.close().await.unwrap();
    rows
}

/// What the writer committed: the emails it added and has not deleted, and whether its last
/// write was refused because the tenant had moved away.
struct Written {
    live: BTreeSet<String>,
    refused: Option<String>,
}

/// Adds a customer of `tenant` to the file at `path` every few milliseconds, and deletes every
/// third one it added, until `stop` or until the file refuses the tenant's writes.
async fn write_until(path: &Path, tenant: &str, stop: Arc<AtomicBool>) -> Written {
    let mut conn = open(path).await;
    let mut written = Written {
        live: BTreeSet::new(),
        refused: None,
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let email = format!("w{n}@writer.test");
        if let Err(e) = add_customer(&mut conn, tenant, &email).await {
            written.refused = Some(e.to_string());
            break;
        }
        written.live.insert(email);
        if n % 3 == 0 {
            let gone = format!("w{}@writer.test", n - 1);
            let deleted = sqlx::query("DELETE FROM customers WHERE tenant_id = ? AND email = ?")
                .bind(tenant)
                .bind(&gone)
                .execute(&mut conn)
                .await;
            if let Err(e) = deleted {
                written.refused = Some(e.to_string());
                break;
            }
            written.live.remove(&gone);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    conn.close().await.unwrap();
    written
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_moves_from_the_shared_file_to_a_file_of_its_own_and_back_while_a_writer_writes() {
    let env = Arc::new(make_test_env());
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let (id, hooli_id) = (str_of(&acme, "id"), str_of(&hooli, "id"));
    let shared = space_path(&acme);
    let mut conn = open(&shared).await;
    for n in 0..2000 {
        add_customer(&mut conn, &id, &format!("c{n}@acme.test"))
            .await
            .unwrap();
    }
    for n in 0..300 {
        add_customer(&mut conn, &hooli_id, &format!("c{n}@hooli.test"))
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let seeded = emails(&shared, &id).await;
    let hooli_rows = tenant_rows(&shared, &hooli_id).await;

    // Moved while a writer adds and deletes its customers in the shared file: the writer's
    // writes stop being taken at the switch, and the new file holds exactly what it committed.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (shared, id, stop) = (shared.clone(), id.clone(), stop.clone());
        async move { write_until(&shared, &id, stop).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let moved = tokio::task::spawn_blocking({
        let env = env.clone();
        move || env.json(&["tenant", "move", "acme", "--to", "database"])
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert_eq!(
        (&moved["state"], &moved["isolation"]),
        (&Value::from("succeeded"), &Value::from("database")),
        "{moved:#}"
    );
    let own = space_path(&env.show("acme"));
    assert_ne!(own, shared);
    let expected: BTreeSet<String> = seeded.union(&written.live).cloned().collect();
    assert_eq!(emails(&own, &id).await, expected);
    assert!(!written.live.is_empty(), "the writer wrote during the move");
    if let Some(refused) = &written.refused {
        assert!(refused.contains("is being moved"), "{refused}");
    }
    // Another move waits for this one to end.
    let out = env
        .command()
        .args(["tenant", "move", "acme", "--to", "shared"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--complete"),
        "{}",
        stderr_of(&out)
    );
    // The old file refuses the tenant's writes, not its neighbour's; nothing of the neighbour
    // went along.
    let mut conn = open(&shared).await;
    let refused = add_customer(&mut conn, &id, "late@acme.test")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is being moved"), "{refused}");
    add_customer(&mut conn, &hooli_id, "new@hooli.test")
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(tenant_rows(&own, &hooli_id).await, 0);

    // Written at the new place, then rolled back: those rows go home; the new file goes.
    let mut conn = open(&own).await;
    add_customer(&mut conn, &id, "own@acme.test").await.unwrap();
    sqlx::query("DELETE FROM customers WHERE tenant_id = ? AND email = 'c7@acme.test'")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let at_new_place = emails(&own, &id).await;
    let back = env.json(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(back["isolation"], "shared", "{back:#}");
    assert_eq!(emails(&shared, &id).await, at_new_place);
    assert!(!own.exists(), "the rolled-back file was removed");
    let mut conn = open(&shared).await;
    add_customer(&mut conn, &id, "home@acme.test")
        .await
        .unwrap();
    conn.close().await.unwrap();

    // Again, and completed: the shared file keeps none of its rows, every neighbour's row stays.
    env.json(&["tenant", "move", "acme", "--to", "database"]);
    env.json(&["tenant", "move", "acme", "--complete"]);
    let mut expected = at_new_place;
    expected.insert("home@acme.test".into());
    assert_eq!(emails(&own, &id).await, expected);
    assert_eq!(tenant_rows(&shared, &id).await, 0);
    assert_eq!(tenant_rows(&shared, &hooli_id).await, hooli_rows + 1);
    // Rebalanced: its file moves to another SQLite shard of its region, and the old one goes.
    let elsewhere = tempfile::tempdir().unwrap();
    env.json(&[
        "shard",
        "add",
        "eu-west-files",
        "--region",
        "eu-west",
        "--engine",
        "sqlite",
        "--directory",
        elsewhere.path().to_str().unwrap(),
    ]);
    let moved = env.json(&[
        "tenant",
        "move",
        "acme",
        "--to",
        "database",
        "--shard",
        "eu-west-files",
    ]);
    assert_eq!(moved["shard"], "eu-west-files", "{moved:#}");
    env.json(&["tenant", "move", "acme", "--complete"]);
    let rebalanced = space_path(&env.show("acme"));
    assert!(rebalanced.starts_with(elsewhere.path()), "{rebalanced:?}");
    assert_eq!(emails(&rebalanced, &id).await, expected);
    assert!(!own.exists(), "the file it left was removed");

    let events = env.event_types("acme");
    for expected in ["TenantMoveStarted", "TenantMoved", "TenantMoveRolledBack"] {
        assert!(events.contains(&expected.to_owned()), "{events:?}");
    }
    assert!(events.contains(&"TenantMoveCompleted".to_owned()));
    // The reconciler finds its place as the catalog says, its licence aside.
    let pass = env.json(&["reconcile"]);
    let kinds: Vec<&str> = pass["tenants"]["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .filter(|kind| !kind.starts_with("licence"))
        .collect();
    assert!(kinds.is_empty(), "{pass:#}");
}

#[test]
fn a_schema_is_not_a_place_on_sqlite() {
    let env = make_test_env();
    env.create("acme", "standard", "eu-west", &[]);
    let out = env
        .command()
        .args(["tenant", "move", "acme", "--to", "schema"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("schema"), "{}", stderr_of(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_move_killed_at_any_step_is_finished_by_ops_resume() {
    let env = make_test_env();
    let neighbour = env.create("neighbour", "standard", "eu-west", &[]);
    let shared = space_path(&neighbour);
    let neighbour_rows = tenant_rows(&shared, &str_of(&neighbour, "id")).await;
    let steps = [
        "prepare",
        "create_target",
        "capture",
        "copy",
        "catch_up",
        "switch",
    ];
    for step in steps {
        for side in ["before", "after"] {
            let slug = format!("t-{}-{side}", step.replace('_', "-"));
            let id = str_of(&env.create(&slug, "standard", "eu-west", &[]), "id");
            let mut conn = open(&shared).await;
            for n in 0..300 {
                add_customer(&mut conn, &id, &format!("c{n}@t.test"))
                    .await
                    .unwrap();
            }
            conn.close().await.unwrap();
            let rows = tenant_rows(&shared, &id).await;
            let out = env.tenantry_with_failpoints(
                &format!("{step}.{side}=crash"),
                ["tenant", "move", &slug, "--to", "database"],
            );
            assert!(killed_by_signal(&out), "{step}.{side}: {}", stderr_of(&out));
            env.json(&["ops", "resume"]);
            let moved = env.show(&slug);
            assert_eq!(moved["isolation"], "database", "{step}.{side}: {moved:#}");
            assert_eq!(
                tenant_rows(&space_path(&moved), &id).await,
                rows,
                "{step}.{side}"
            );
            let out = env.tenantry_with_failpoints(
                &format!("remove_source.{side}=crash"),
                ["tenant", "move", &slug, "--complete"],
            );
            assert!(killed_by_signal(&out), "{}", stderr_of(&out));
            env.json(&["ops", "resume"]);
            assert_eq!(tenant_rows(&shared, &id).await, 0, "{step}.{side}");
            assert_eq!(
                tenant_rows(&space_path(&moved), &id).await,
                rows,
                "{step}.{side}"
            );
        }
    }
    assert_eq!(
        tenant_rows(&shared, &str_of(&neighbour, "id")).await,
        neighbour_rows
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_deleted_in_its_rollback_window_leaves_nothing_at_either_place() {
    let env = make_test_env();
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let (id, shared) = (str_of(&acme, "id"), space_path(&acme));
    let mut conn = open(&shared).await;
    for n in 0..50 {
        add_customer(&mut conn, &id, &format!("c{n}@acme.test"))
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let hooli_rows = tenant_rows(&shared, &str_of(&hooli, "id")).await;
    env.json(&["tenant", "move", "acme", "--to", "database"]);
    let own = space_path(&env.show("acme"));

    env.tenantry(["tenant", "delete", "acme"]).success();
    assert!(!own.exists(), "its own file is removed");
    assert_eq!(
        tenant_rows(&shared, &id).await,
        0,
        "its old place is emptied"
    );
    let mut conn = open(&shared).await;
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE 'tenantry_move_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    assert_eq!(
        registered, 0,
        "no move is left registered in the shared file"
    );
    assert_eq!(
        tenant_rows(&shared, &str_of(&hooli, "id")).await,
        hooli_rows
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_downgrade_moves_a_tenant_from_its_own_file_into_the_shared_one() {
    let env = make_test_env();
    let neighbour = env.create("neighbour", "standard", "eu-west", &[]);
    let globex = env.create("globex", "premium", "eu-west", &[]);
    let (id, own, shared) = (
        str_of(&globex, "id"),
        space_path(&globex),
        space_path(&neighbour),
    );
    let mut conn = open(&own).await;
    for n in 0..40 {
        add_customer(&mut conn, &id, &format!("c{n}@globex.test"))
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    let before = emails(&own, &id).await;

    let changed = env.json(&["tenant", "update", "globex", "--plan", "standard"]);
    assert_eq!(changed["tenant"]["plan"], "standard", "{changed:#}");
    let shown = env.show("globex");
    assert_eq!(shown["isolation"], "shared", "{shown:#}");
    assert_eq!(emails(&shared, &id).await, before);
    env.json(&["tenant", "move", "globex", "--complete"]);
    assert!(!own.exists(), "its own file goes once the move completes");
    assert_eq!(emails(&shared, &id).await, before);
}
