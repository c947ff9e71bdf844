//! `tenantry tenant stats`: rows per table and size, collected from the tenant's space and kept
//! in the catalog; in a shared space the size is the tenant's share, and other tenants' rows
//! are never counted as its own.

mod common;

use common::{make_test_env, space_path, str_of};
use sqlx::{Connection, SqliteConnection};

/// Inserts `n` customers of `tenant` into the SQLite space at `path`.
async fn add_customers(path: &std::path::Path, tenant: &str, n: usize) {
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    for _ in 0..n {
        sqlx::query("INSERT INTO customers (id, tenant_id, email) VALUES (?, ?, ?)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(tenant)
            .bind(format!(
                "c{}@{tenant}.example",
                uuid::Uuid::new_v4().simple()
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn stats_count_the_tenants_own_rows_and_size() {
    let env = make_test_env();
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let globex = env.create("globex", "premium", "eu-west", &[]);
    add_customers(&space_path(&acme), &str_of(&acme, "id"), 30).await;
    add_customers(&space_path(&hooli), &str_of(&hooli, "id"), 10).await;
    add_customers(&space_path(&globex), &str_of(&globex, "id"), 5).await;

    let stats = env.json(&["tenant", "stats", "acme", "--refresh"]);
    assert_eq!(stats["rows"]["customers"], 30, "{stats:#}");
    assert_eq!(stats["rows"]["users"], 1, "the bootstrap admin: {stats:#}");
    assert_eq!(stats["size_estimated"], true);
    let shared_size = stats["size_bytes"].as_i64().unwrap();
    assert!(shared_size > 0, "{stats:#}");
    assert_eq!(stats["queries"], 0);
    assert!(stats["avg_query_ms"].is_null());

    // A database of its own is measured, not estimated; the shared file is larger than acme's
    // share of it.
    let own = env.json(&["tenant", "stats", "globex"]);
    assert_eq!(own["rows"]["customers"], 5);
    assert_eq!(own["size_estimated"], false);
    let file = std::fs::metadata(space_path(&acme)).unwrap().len() as i64;
    assert!(shared_size < file, "{shared_size} vs {file}");

    // Recorded: without --refresh the last figures come back, even after more rows arrive.
    add_customers(&space_path(&acme), &str_of(&acme, "id"), 5).await;
    let recorded = env.json(&["tenant", "stats", "acme"]);
    assert_eq!(recorded["rows"]["customers"], 30);
    assert_eq!(recorded["collected_at"], stats["collected_at"]);
    let fresh = env.json(&["tenant", "stats", "acme", "--refresh"]);
    assert_eq!(fresh["rows"]["customers"], 35);
    assert_eq!(fresh["total_rows"], 37);
}

#[tokio::test]
async fn tenants_past_a_growth_threshold_are_advised_a_move_unless_pinned() {
    let env = make_test_env();
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains("customers = 10000"), "the default thresholds");
    let text = text.replace("customers = 10000", "customers = 20").replace(
        "# [placement.overrides.some-tenant]\n# isolation = \"database\"",
        "[placement.overrides.pinned]\nisolation = \"shared\"",
    );
    env.replace_config(&text);
    let acme = env.create("acme", "standard", "eu-west", &[]);
    let hooli = env.create("hooli", "standard", "eu-west", &[]);
    let pinned = env.create("pinned", "standard", "eu-west", &[]);
    add_customers(&space_path(&acme), &str_of(&acme, "id"), 30).await;
    add_customers(&space_path(&hooli), &str_of(&hooli, "id"), 10).await;
    add_customers(&space_path(&pinned), &str_of(&pinned, "id"), 50).await;

    let advice = env.json(&["placement", "recommend", "--refresh"]);
    let advice = advice.as_array().unwrap();
    assert_eq!(advice.len(), 1, "{advice:#?}");
    assert_eq!(advice[0]["slug"], "acme");
    // The threshold's schema, on SQLite (no schemas): a file of its own.
    assert_eq!(advice[0]["advised"], "database");
    assert_eq!(advice[0]["reason"], "30 customers ≥ 20");
    assert_eq!(
        advice[0]["command"],
        "tenantry tenant move acme --to database"
    );

    // The same advice through the API.
    let server = common::server::Server::start(&env, &[]);
    let token = env.json(&["token", "create", "--scope", "reader", "--name", "planner"]);
    let out = env
        .command()
        .args(["--server", &server.base, "--token"])
        .arg(token["token"].as_str().unwrap())
        .args(["placement", "recommend", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(remote.as_array().unwrap(), advice);
}
