//! `tenantry tenant move`: a tenant's data moves live out of the shared database into a schema,
//! then into a database of its own, and back into the shared database, each completed; the
//! catalog follows with a new epoch, the old place refuses the tenant's writes until the move
//! completes, and neighbours are untouched.

mod common;

use common::{Env, compute_of, environ, killed_by_signal, make_test_env_with, pid_of, stderr_of};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tenantry_testkit::postgres::TestServer;

async fn connect(server: &TestServer, database: &str) -> PgConnection {
    PgConnection::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        server.port
    ))
    .await
    .unwrap()
}

async fn add_customers(conn: &mut PgConnection, table: &str, tenant: &str, n: usize) {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, email)
         SELECT $1, 'c' || g || '-' || md5(random()::text) || '@example.com' FROM generate_series(1, $2) g"
    )))
    .bind(tenant)
    .bind(n as i32)
    .execute(&mut *conn)
    .await
    .unwrap();
}

async fn count(conn: &mut PgConnection, table: &str, tenant: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    )))
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_moves_from_shared_to_schema_to_database_and_each_move_completes() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let (acme_id, hooli_id) = (
        acme["id"].as_str().unwrap().to_owned(),
        hooli["id"].as_str().unwrap().to_owned(),
    );
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    let epoch = acme["epoch"].as_i64().unwrap();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &acme_id, 5000).await;
    add_customers(&mut shared, "customers", &hooli_id, 700).await;

    // Shared → schema.
    let moved = env.json(&["tenant", "move", "acme", "--to", "schema"]);
    assert_eq!(moved["state"], "succeeded", "{moved:#}");
    assert_eq!(
        (&moved["isolation"], &moved["epoch"]),
        (&Value::from("schema"), &Value::from(epoch + 1))
    );
    let shown = env.show("acme");
    let schema = shown["space"]["schema"].as_str().unwrap().to_owned();
    assert_eq!(
        count(&mut shared, &format!("\"{schema}\".customers"), &acme_id).await,
        5000
    );
    // The old place keeps its copy but refuses the tenant's writes; the neighbour writes on.
    let refused =
        sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'x@example.com')")
            .bind(&acme_id)
            .execute(&mut shared)
            .await
            .unwrap_err();
    assert!(refused.to_string().contains("is being moved"), "{refused}");
    add_customers(&mut shared, "customers", &hooli_id, 1).await;
    // Completing the move removes the old copy, and only the tenant's.
    let completed = env.json(&["tenant", "move", "acme", "--complete"]);
    assert_eq!(completed["state"], "succeeded", "{completed:#}");
    assert_eq!(count(&mut shared, "customers", &acme_id).await, 0);
    assert_eq!(count(&mut shared, "customers", &hooli_id).await, 701);
    let triggers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'tenantry_capture'")
            .fetch_one(&mut shared)
            .await
            .unwrap();
    assert_eq!(triggers, 0, "no tenant under move: no capture left");

    // Schema → a database of its own.
    let moved = env.json(&["tenant", "move", "acme", "--to", "database"]);
    assert_eq!(
        (&moved["isolation"], &moved["epoch"]),
        (&Value::from("database"), &Value::from(epoch + 2))
    );
    env.json(&["tenant", "move", "acme", "--complete"]);
    let shown = env.show("acme");
    let database = shown["space"]["database"].as_str().unwrap().to_owned();
    let mut own = connect(&server, &database).await;
    assert_eq!(count(&mut own, "customers", &acme_id).await, 5000);
    let schema_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut shared)
            .await
            .unwrap();
    assert!(!schema_left, "the old schema was dropped");

    // The events tell the story; bad requests change nothing.
    let events = env.event_types("acme");
    for expected in ["TenantMoveStarted", "TenantMoved", "TenantMoveCompleted"] {
        assert_eq!(
            events.iter().filter(|e| *e == expected).count(),
            2,
            "{events:?}"
        );
    }
    let out = env
        .command()
        .args(["tenant", "move", "acme", "--to", "database"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let out = env
        .command()
        .args(["tenant", "move", "hooli", "--complete"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no move to complete"),
        "{}",
        stderr_of(&out)
    );

    // And back: out of its own database into the shared one. Rolled back first, with the
    // changes made at the shared place carried home; then again, and completed.
    add_customers(&mut own, "customers", &acme_id, 10).await;
    let moved = env.json(&["tenant", "move", "acme", "--to", "shared"]);
    assert_eq!(
        (&moved["isolation"], &moved["epoch"]),
        (&Value::from("shared"), &Value::from(epoch + 3)),
        "{moved:#}"
    );
    assert_eq!(count(&mut shared, "customers", &acme_id).await, 5010);
    add_customers(&mut shared, "customers", &acme_id, 3).await;
    let back = env.json(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(back["isolation"], "database", "{back:#}");
    assert_eq!(count(&mut own, "customers", &acme_id).await, 5013);
    assert_eq!(count(&mut shared, "customers", &acme_id).await, 0);
    assert_eq!(count(&mut shared, "customers", &hooli_id).await, 701);
    own.close().await.unwrap();
    env.json(&["tenant", "move", "acme", "--to", "shared"]);
    env.json(&["tenant", "move", "acme", "--complete"]);
    let shown = env.show("acme");
    assert_eq!(
        (&shown["isolation"], &shown["space"]["database"]),
        (&Value::from("shared"), &Value::from(shared_db.as_str())),
        "{shown:#}"
    );
    assert_eq!(count(&mut shared, "customers", &acme_id).await, 5013);
    assert_eq!(count(&mut shared, "customers", &hooli_id).await, 701);
    let database_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut shared)
            .await
            .unwrap();
    assert!(!database_left, "its own database was dropped");
    // Served from the shared database again, under row-level security, by the storefront's
    // data path; its licence follows the reconciler.
    assert_eq!(env.json(&["tenant", "licence", "acme"])["valid"], true);
}

/// Runs `args` with a crash failpoint, which must abort the process.
fn crash(env: &Env, spec: &str, args: &[&str]) {
    let out = env.tenantry_with_failpoints(spec, args);
    assert!(
        killed_by_signal(&out) && stderr_of(&out).contains("failpoint"),
        "`tenantry {}` with {spec}: {}\n{}",
        args.join(" "),
        out.status,
        stderr_of(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_killed_at_any_step_is_finished_by_ops_resume() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let neighbour = env.create("neighbour", "standard", "eu-west", &[]);
    let neighbour_id = neighbour["id"].as_str().unwrap().to_owned();
    let shared_db = neighbour["space"]["database"].as_str().unwrap().to_owned();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &neighbour_id, 300).await;
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
            let tenant = env.create(&slug, "standard", "eu-west", &[]);
            let id = tenant["id"].as_str().unwrap().to_owned();
            add_customers(&mut shared, "customers", &id, 2500).await;
            crash(
                &env,
                &format!("{step}.{side}=crash"),
                &["tenant", "move", &slug, "--to", "database"],
            );
            let resumed = env.json(&["ops", "resume"]);
            assert!(
                resumed
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|op| op["state"] == "succeeded"),
                "{step}.{side}: {resumed:#}"
            );
            let moved = env.show(&slug);
            assert_eq!(moved["isolation"], "database", "{step}.{side}: {moved:#}");
            let mut own = connect(&server, moved["space"]["database"].as_str().unwrap()).await;
            assert_eq!(
                count(&mut own, "customers", &id).await,
                2500,
                "{step}.{side}"
            );
            let events = env.event_types(&slug);
            assert_eq!(
                events.iter().filter(|e| *e == "TenantMoved").count(),
                1,
                "{step}.{side}: {events:?}"
            );
            // Completing, killed on either side of removing the source, resumes too.
            crash(
                &env,
                &format!("remove_source.{side}=crash"),
                &["tenant", "move", &slug, "--complete"],
            );
            env.json(&["ops", "resume"]);
            assert_eq!(
                count(&mut shared, "customers", &id).await,
                0,
                "{step}.{side}"
            );
            assert_eq!(
                count(&mut own, "customers", &id).await,
                2500,
                "{step}.{side}"
            );
        }
    }
    assert_eq!(count(&mut shared, "customers", &neighbour_id).await, 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_rolled_back_carries_the_new_changes_home_and_can_be_made_again() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let id = acme["id"].as_str().unwrap().to_owned();
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &id, 1000).await;

    env.json(&["tenant", "move", "acme", "--to", "database"]);
    let database = env.show("acme")["space"]["database"]
        .as_str()
        .unwrap()
        .to_owned();
    // The tenant lives on at its new place: rows added, changed and removed there.
    let mut own = connect(&server, &database).await;
    add_customers(&mut own, "customers", &id, 25).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "UPDATE customers SET first_name = 'changed' WHERE tenant_id = '{id}' AND email LIKE 'c1-%';
         DELETE FROM customers WHERE tenant_id = '{id}' AND email LIKE 'c2-%'"
    )))
    .execute(&mut own)
    .await
    .unwrap();
    let at_new_place = count(&mut own, "customers", &id).await;
    let changed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM customers WHERE tenant_id = $1 AND first_name = 'changed'",
    )
    .bind(&id)
    .fetch_one(&mut own)
    .await
    .unwrap();
    drop(own);

    let back = env.json(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(back["state"], "succeeded", "{back:#}");
    assert_eq!(back["isolation"], "shared");
    assert_eq!(count(&mut shared, "customers", &id).await, at_new_place);
    let changed_home: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM customers WHERE tenant_id = $1 AND first_name = 'changed'",
    )
    .bind(&id)
    .fetch_one(&mut shared)
    .await
    .unwrap();
    assert_eq!(changed_home, changed);
    // Home takes its writes again; the new place is gone.
    add_customers(&mut shared, "customers", &id, 1).await;
    let gone: bool =
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut shared)
            .await
            .unwrap();
    assert!(gone, "the rolled-back target database was dropped");
    assert!(
        env.event_types("acme")
            .contains(&"TenantMoveRolledBack".to_owned())
    );

    // And the move can be made again, and completed — this time through the API, run by the
    // server's worker.
    let server_process = common::server::Server::start(&env, &[]);
    let token = env.json(&["token", "create", "--scope", "operator", "--name", "mover"]);
    let remote = |args: &[&str]| {
        let out = env
            .command()
            .args(["--server", &server_process.base, "--token"])
            .arg(token["token"].as_str().unwrap())
            .args(args)
            .args(["-o", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let moved = remote(&["tenant", "move", "acme", "--to", "database"]);
    assert_eq!(
        (&moved["state"], &moved["isolation"]),
        (&Value::from("succeeded"), &Value::from("database"))
    );
    remote(&["tenant", "move", "acme", "--complete"]);
    drop(server_process);
    let database = env.show("acme")["space"]["database"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut own = connect(&server, &database).await;
    assert_eq!(count(&mut own, "customers", &id).await, at_new_place + 1);
    assert_eq!(count(&mut shared, "customers", &id).await, 0);
}

async fn database_exists(server: &TestServer, name: &str) -> bool {
    let mut admin = connect(server, "postgres").await;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

/// The move operation of tenant `id` last queued, from `ops list` (newest first).
fn last_move(env: &Env, id: &str) -> Option<Value> {
    env.operations()
        .into_iter()
        .find(|op| op["tenant_id"] == id && op["kind"] == "move")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_under_way_is_cancelled_its_target_removed_and_the_tenant_left_where_it_was() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let (acme_id, hooli_id) = (
        acme["id"].as_str().unwrap().to_owned(),
        hooli["id"].as_str().unwrap().to_owned(),
    );
    let target_db = format!("tenant_{}", acme_id.replace('-', ""));
    let mut shared = connect(&server, acme["space"]["database"].as_str().unwrap()).await;
    add_customers(&mut shared, "customers", &acme_id, 100_000).await;
    add_customers(&mut shared, "customers", &hooli_id, 400).await;

    let out = env
        .command()
        .args(["tenant", "move", "acme", "--cancel"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("no move under way"),
        "{}",
        stderr_of(&out)
    );

    // A move copying in one process is cancelled from another: its copy stops at the next
    // batch and the move is undone.
    let mover = env
        .command_std()
        .args(["tenant", "move", "acme", "--to", "database"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let copying = std::time::Instant::now();
    loop {
        let op = last_move(&env, &acme_id);
        let running = op.as_ref().is_some_and(|op| {
            op["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "copy" && s["state"] == "running")
        });
        if running {
            break;
        }
        assert!(
            copying.elapsed().as_secs() < 60,
            "the move never started copying: {op:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cancelled = env.json(&["tenant", "move", "acme", "--cancel"]);
    assert_eq!(cancelled["cancelled"], true, "{cancelled:#}");
    assert_eq!(cancelled["isolation"], "shared");
    let moved = mover.wait_with_output().unwrap();
    assert!(!moved.status.success());
    assert!(
        stderr_of(&moved).contains("cancelled by"),
        "{}",
        stderr_of(&moved)
    );

    let op = last_move(&env, &acme_id).unwrap();
    assert_eq!(op["state"], "failed", "{op:#}");
    let after = env.show("acme");
    assert_eq!(
        (after["state"].as_str(), after["isolation"].as_str()),
        (Some("active"), Some("shared"))
    );
    assert_eq!(
        after["epoch"], acme["epoch"],
        "the catalog never pointed elsewhere"
    );
    assert!(
        !database_exists(&server, &target_db).await,
        "the target is removed"
    );
    assert_eq!(count(&mut shared, "customers", &acme_id).await, 100_000);
    assert_eq!(count(&mut shared, "customers", &hooli_id).await, 400);
    let events = env.event_types("acme");
    assert!(
        events.contains(&"TenantMoveFailed".to_owned()),
        "{events:?}"
    );
    assert!(!events.contains(&"TenantMoved".to_owned()), "{events:?}");

    // A move whose process died is cancelled the same way, by whoever asks.
    crash(
        &env,
        "catch_up.before=crash",
        &["tenant", "move", "acme", "--to", "database"],
    );
    assert!(database_exists(&server, &target_db).await);

    // While it is under way, schema changes where it captures are refused, from anyone: by
    // hand, and a fleet migration (which names what to do and changes nothing).
    let refused = sqlx::query("ALTER TABLE customers ADD COLUMN nickname text")
        .execute(&mut shared)
        .await
        .unwrap_err();
    let refused = refused.as_database_error().unwrap();
    assert_eq!(refused.code().as_deref(), Some("55006"));
    assert!(
        refused.message().contains(&acme_id) && refused.message().contains("--cancel"),
        "{}",
        refused.message()
    );
    std::fs::write(
        env.path().join("app/migrations/postgres/0005_nickname.sql"),
        "ALTER TABLE customers ADD COLUMN nickname text;",
    )
    .unwrap();
    std::fs::write(
        env.path().join("app/migrations/sqlite/0005_nickname.sql"),
        "ALTER TABLE customers ADD COLUMN nickname TEXT;",
    )
    .unwrap();
    let out = env.command().args(["migrate"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("being moved"),
        "{}",
        stderr_of(&out)
    );

    let cancelled = env.json(&["tenant", "move", "acme", "--cancel"]);
    assert_eq!(cancelled["cancelled"], true, "{cancelled:#}");
    assert!(!database_exists(&server, &target_db).await);
    // The move is over: the migration goes through.
    env.json(&["migrate"]);

    // Nothing of the cancelled moves is left in the way of the next one.
    add_customers(&mut shared, "customers", &acme_id, 10).await;
    let moved = env.json(&["tenant", "move", "acme", "--to", "database"]);
    assert_eq!(moved["isolation"], "database", "{moved:#}");
    let mut own = connect(&server, &target_db).await;
    assert_eq!(count(&mut own, "customers", &acme_id).await, 100_010);

    // After the switch, a cancel is refused and names the way back.
    let out = env
        .command()
        .args(["tenant", "move", "acme", "--cancel"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--rollback"),
        "{}",
        stderr_of(&out)
    );
}

/// Runs `placement auto-move --refresh` and returns each tenant's outcome, by slug.
fn auto_move(env: &Env) -> std::collections::BTreeMap<String, String> {
    env.json(&["placement", "auto-move", "--refresh"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["slug"].as_str().unwrap().to_owned(),
                o["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reconciler_moves_a_tenant_well_past_a_threshold_and_leaves_an_operators_rollback_standing()
 {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let out = env
        .command()
        .args(["placement", "auto-move"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("[placement.auto_move] is not set"),
        "{}",
        stderr_of(&out)
    );

    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains("customers = 10000"), "the default thresholds");
    let text = text.replace("customers = 10000", "customers = 1000")
        + "\n[placement.auto_move]\nmargin = 0.2\ncooldown_secs = 3600\n";
    env.replace_config(&text);
    let near = env.create("near", "standard", "eu-west", &[]);
    let big = env.create("big", "standard", "eu-west", &[]);
    let mut shared = connect(&server, big["space"]["database"].as_str().unwrap()).await;
    add_customers(&mut shared, "customers", near["id"].as_str().unwrap(), 1100).await;
    add_customers(&mut shared, "customers", big["id"].as_str().unwrap(), 1500).await;

    // Past the threshold by the margin: moved; at it but not by the margin: left.
    let outcomes = auto_move(&env);
    assert!(outcomes["big"].starts_with("moved"), "{outcomes:#?}");
    assert!(outcomes["near"].contains("not 20 % past"), "{outcomes:#?}");
    assert_eq!(env.show("big")["isolation"], "schema");
    assert_eq!(env.show("near")["isolation"], "shared");
    assert!(env.event_types("big").contains(&"TenantMoved".to_owned()));

    // Its move waits for an operator; an operator's rollback then stands for the cooldown.
    let outcomes = auto_move(&env);
    assert!(
        outcomes
            .get("big")
            .is_none_or(|o| o.contains("rollback window")),
        "{outcomes:#?}"
    );
    env.json(&["tenant", "move", "big", "--rollback"]);
    assert_eq!(env.show("big")["isolation"], "shared");
    let outcomes = auto_move(&env);
    assert!(outcomes["big"].contains("cooldown"), "{outcomes:#?}");
    assert_eq!(env.show("big")["isolation"], "shared");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_altered_behind_the_movers_back_fails_the_switch_naming_the_rows() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let id = acme["id"].as_str().unwrap().to_owned();
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &id, 2000).await;
    crash(
        &env,
        "catch_up.after=crash",
        &["tenant", "move", "acme", "--to", "database"],
    );
    // The copy is there; someone changes it by hand before the switch compares.
    let target_db = format!("tenant_{}", id.replace('-', ""));
    let mut target = connect(&server, &target_db).await;
    let victims: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM customers WHERE tenant_id = $1 ORDER BY id LIMIT 3",
    )
    .bind(&id)
    .fetch_all(&mut target)
    .await
    .unwrap();
    sqlx::query("DELETE FROM customers WHERE id::text = ANY($1)")
        .bind(&victims[..2])
        .execute(&mut target)
        .await
        .unwrap();
    sqlx::query("UPDATE customers SET email = 'altered@example.com' WHERE id::text = $1")
        .bind(&victims[2])
        .execute(&mut target)
        .await
        .unwrap();
    target.close().await.unwrap();

    let out = env
        .command()
        .args(["--output", "json", "ops", "resume"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(
        said.contains("the target differs from the source")
            && said.contains("the rows that differ, by key: customers:")
            && said.contains(&format!(
                "{{\"id\": \"{}\"}} to {{\"id\": \"{}\"}} (3 rows)",
                victims[0], victims[2]
            )),
        "{said}"
    );
    // The move is undone: the tenant where it was, with every row, writing again.
    let shown = env.show("acme");
    assert_eq!(shown["isolation"], "shared", "{shown:#}");
    assert_eq!(count(&mut shared, "customers", &id).await, 2000);
    add_customers(&mut shared, "customers", &id, 1).await;
    let events = env.event_types("acme");
    assert!(
        events.contains(&"TenantMoveFailed".to_owned()),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_residency_change_moves_data_and_files_to_another_region_only_when_asked() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let id = acme["id"].as_str().unwrap().to_owned();
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &id, 800).await;
    let files = |region: &str| {
        env.data_dir()
            .join(format!("storage/{region}/tenants/{id}"))
    };
    std::fs::write(files("eu-west").join("logo.png"), b"png").unwrap();

    // A shard of another region is refused without --region, naming it.
    let us_shard = env
        .json(&["shard", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["region"] == "us-east")
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .unwrap();
    let out = env
        .command()
        .args([
            "tenant", "move", "acme", "--to", "database", "--shard", &us_shard,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--region us-east"),
        "{}",
        stderr_of(&out)
    );

    // With it: the data, the region and the files move; the event says it was a residency change.
    let moved = env.json(&[
        "tenant", "move", "acme", "--to", "database", "--region", "us-east",
    ]);
    assert_eq!(
        (&moved["region"], &moved["isolation"], &moved["shard"]),
        (
            &Value::from("us-east"),
            &Value::from("database"),
            &Value::from(us_shard.as_str())
        ),
        "{moved:#}"
    );
    assert_eq!(
        std::fs::read(files("us-east").join("logo.png")).unwrap(),
        b"png"
    );
    let mut own = connect(
        &server,
        env.show("acme")["space"]["database"].as_str().unwrap(),
    )
    .await;
    assert_eq!(count(&mut own, "customers", &id).await, 800);
    let event = env
        .events("acme")
        .into_iter()
        .find(|e| e["event_type"] == "TenantMoved")
        .unwrap();
    assert_eq!(
        event["payload"]["move"]["residency"],
        serde_json::json!({ "from": "eu-west", "to": "us-east" })
    );

    // Rolled back: home to eu-west, with a file written in us-east meanwhile; us-east cleared.
    std::fs::write(files("us-east").join("invoice.pdf"), b"pdf").unwrap();
    add_customers(&mut own, "customers", &id, 5).await;
    own.close().await.unwrap();
    let back = env.json(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(back["region"], "eu-west", "{back:#}");
    assert_eq!(count(&mut shared, "customers", &id).await, 805);
    assert_eq!(
        std::fs::read(files("eu-west").join("invoice.pdf")).unwrap(),
        b"pdf"
    );
    assert!(!files("us-east").exists());

    // Again, completed: eu-west keeps nothing of it.
    env.json(&[
        "tenant", "move", "acme", "--to", "database", "--region", "us-east",
    ]);
    env.json(&["tenant", "move", "acme", "--complete"]);
    assert_eq!(env.show("acme")["region"], "us-east");
    assert_eq!(count(&mut shared, "customers", &id).await, 0);
    assert!(!files("eu-west").exists());
    assert_eq!(
        std::fs::read(files("us-east").join("invoice.pdf")).unwrap(),
        b"pdf"
    );
    // Its storage is where its region says: the reconciler has only the licence to reissue
    // for the new isolation.
    let pass = env.json(&["reconcile"]);
    let kinds: Vec<&str> = pass["tenants"]["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["licence_missing"], "{pass:#}");
    let again = env.json(&["reconcile", "--dry-run"]);
    assert_eq!(
        again["tenants"]["drifts"],
        serde_json::json!([]),
        "{again:#}"
    );
}

/// The `DATABASE_URL` the tenant's dedicated compute runs with.
fn compute_database_url(env: &Env, slug: &str) -> String {
    let compute = compute_of(env, slug);
    assert_eq!(compute["state"], "running", "{compute:#}");
    environ(pid_of(&compute))["DATABASE_URL"].clone()
}

async fn role_exists(server: &TestServer, role: &str) -> bool {
    let mut admin = connect(server, "postgres").await;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_database_moves_to_a_shard_on_another_server_and_its_compute_follows() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let Some(other) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    // An enterprise tenant: a database of its own and its own storefront process.
    let acme = env.create("acme", "enterprise", "eu-west", &[]);
    env.create("hooli", "standard", "eu-west", &[]);
    let (id, home) = (
        acme["id"].as_str().unwrap().to_owned(),
        acme["shard"].as_str().unwrap().to_owned(),
    );
    let database = acme["space"]["database"].as_str().unwrap().to_owned();
    let mut old = connect(&server, &database).await;
    add_customers(&mut old, "customers", &id, 3000).await;
    for (name, url) in [("eu-west-2", &other.url), ("eu-west-twin", &server.url)] {
        env.json(&[
            "shard", "add", name, "--region", "eu-west", "--engine", "postgres", "--url", url,
        ]);
    }

    // Its database has its name on every server, as the region's shared database has: a shard
    // on the same server, where the target would be the source itself, is refused.
    for (slug, to) in [("acme", "database"), ("hooli", "shared")] {
        let out = env
            .command()
            .args([
                "tenant",
                "move",
                slug,
                "--to",
                to,
                "--shard",
                "eu-west-twin",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("same PostgreSQL server"),
            "{}",
            stderr_of(&out)
        );
    }

    // To the other server: the same credentials reach it, and the compute follows at once.
    let moved = env.json(&[
        "tenant",
        "move",
        "acme",
        "--to",
        "database",
        "--shard",
        "eu-west-2",
    ]);
    assert_eq!(
        (&moved["state"], &moved["shard"], &moved["isolation"]),
        (
            &Value::from("succeeded"),
            &Value::from("eu-west-2"),
            &Value::from("database")
        ),
        "{moved:#}"
    );
    let url = compute_database_url(&env, "acme");
    assert!(url.contains(&format!(":{}/", other.port)), "{url:?}");
    let mut own = PgConnection::connect(&url).await.unwrap();
    assert_eq!(count(&mut own, "customers", &id).await, 3000);
    add_customers(&mut own, "customers", &id, 5).await;
    own.close().await.unwrap();
    // The old server refuses the tenant's writes until the move ends.
    let refused = sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'x@y.z')")
        .bind(&id)
        .execute(&mut old)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is being moved"), "{refused}");

    // Rolled back: home with the rows written over there, reached with the same credentials.
    let back = env.json(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(back["shard"], home.as_str(), "{back:#}");
    let url = compute_database_url(&env, "acme");
    assert!(url.contains(&format!(":{}/", server.port)), "{url:?}");
    let mut own = PgConnection::connect(&url).await.unwrap();
    assert_eq!(count(&mut own, "customers", &id).await, 3005);
    own.close().await.unwrap();
    assert!(!database_exists(&other, &database).await);
    assert!(!role_exists(&other, &database).await);

    // Again, completed: only the new server keeps it; its credentials still work.
    env.json(&[
        "tenant",
        "move",
        "acme",
        "--to",
        "database",
        "--shard",
        "eu-west-2",
    ]);
    env.json(&["tenant", "move", "acme", "--complete"]);
    old.close().await.unwrap();
    assert!(!database_exists(&server, &database).await);
    assert!(!role_exists(&server, &database).await);
    let url = compute_database_url(&env, "acme");
    let mut own = PgConnection::connect(&url).await.unwrap();
    assert_eq!(count(&mut own, "customers", &id).await, 3005);
    own.close().await.unwrap();
    let pass = env.json(&["reconcile", "--dry-run"]);
    assert_eq!(pass["tenants"]["drifts"], serde_json::json!([]), "{pass:#}");
    env.tenantry(["tenant", "delete", "acme"]).success();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_deleted_in_its_rollback_window_leaves_nothing_at_either_place_on_postgres() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let env = make_test_env_with(&["--postgres", &server.url]);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let (id, hooli_id) = (
        acme["id"].as_str().unwrap().to_owned(),
        hooli["id"].as_str().unwrap().to_owned(),
    );
    let shared_db = acme["space"]["database"].as_str().unwrap().to_owned();
    let mut shared = connect(&server, &shared_db).await;
    add_customers(&mut shared, "customers", &id, 200).await;
    add_customers(&mut shared, "customers", &hooli_id, 20).await;
    env.json(&["tenant", "move", "acme", "--to", "database"]);
    let database = env.show("acme")["space"]["database"]
        .as_str()
        .unwrap()
        .to_owned();

    env.tenantry(["tenant", "delete", "acme"]).success();
    assert!(!database_exists(&server, &database).await);
    assert_eq!(count(&mut shared, "customers", &id).await, 0);
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenantry_move_tenants WHERE tenant_id = $1")
            .bind(&id)
            .fetch_one(&mut shared)
            .await
            .unwrap();
    assert_eq!(registered, 0, "no move is left registered");
    assert_eq!(count(&mut shared, "customers", &hooli_id).await, 20);
}
