//! Live moves: copy throughput against a plain `COPY … TO STDOUT | COPY … FROM STDIN` of the
//! same rows, and the tenant's write pause at the switch, measured in one run.
//!
//! `cargo bench -p tenantry-orchestrator --bench moves` (PostgreSQL needed: the local server
//! holds the catalog; two private servers, syncing to disk, are the shards `eu-west-1` (the
//! shared database) and `eu-west-2`). `BENCH_MOVE_CUSTOMERS` (default 100000) sizes the big
//! tenant (a customer, an order and an order item each); `BENCH_PAUSE_MOVES` (default 10) moves
//! tenants of `BENCH_PAUSE_CUSTOMERS` (default 2000) customers to time the pause.

use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenantry_core::config::Config;
use tenantry_core::{Engine, Isolation};
use tenantry_orchestrator::{NoProgress, Orchestrator, ProvisionRequest};
use tenantry_testkit::postgres::{TestDatabase, TestServer};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn storefront() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront")
}

fn config(dir: &Path, catalog: &str, shards: &[&TestServer]) -> Arc<Config> {
    let common = tenantry_core::config::DEFAULT_TOML;
    let plans = &common[common.find("# Plans:").unwrap()..];
    let app = storefront();
    let mut text = format!(
        "[catalog]\nurl = \"{catalog}\"\n[storage]\nroot = \"data/storage\"\n[secrets]\nmaster_key_file = \"master.key\"\n\
         [application]\nname = \"storefront\"\nmigrations = \"{}\"\nseeds = \"{}\"\n[regions.eu-west]\nshared_shard = \"eu-west-1\"\n",
        app.join("migrations").display(),
        app.join("seeds").display()
    );
    for (i, server) in shards.iter().enumerate() {
        text.push_str(&format!(
            "[[shards]]\nname = \"eu-west-{}\"\nregion = \"eu-west\"\nengine = \"postgres\"\nurl = \"{}\"\ncapacity = 100000\n",
            i + 1,
            server.url
        ));
    }
    text.push_str(plans);
    let path = dir.join("tenantry.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        dir.join("master.key"),
        tenantry_core::secrets::MasterKey::generate().to_base64(),
    )
    .unwrap();
    Arc::new(Config::load(&path).unwrap())
}

async fn connect(server: &TestServer, database: &str) -> PgConnection {
    PgConnection::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        server.port
    ))
    .await
    .unwrap()
}

/// A shared tenant with `customers` customers, each with an order of one item.
async fn tenant(orch: &Orchestrator, server: &TestServer, slug: &str, customers: usize) -> String {
    let req = ProvisionRequest {
        slug: slug.into(),
        plan: "standard".into(),
        region: "eu-west".into(),
        ..ProvisionRequest::default()
    };
    let (t, op) = orch.request_provision(&req).await.unwrap();
    orch.run(op.id, &NoProgress).await.unwrap();
    let id = t.id.to_string();
    let mut shared = connect(server, "tenantry_shared_eu_west").await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "WITH c AS (
           INSERT INTO customers (tenant_id, email, first_name)
           SELECT '{id}', 'c' || g || '@example.com', 'name ' || g FROM generate_series(1, {customers}) g
           RETURNING id)
         , o AS (INSERT INTO orders (tenant_id, customer_id, order_number, currency, total_cents)
                 SELECT '{id}', id, row_number() OVER (), 'EUR', 1999 FROM c RETURNING id)
         INSERT INTO order_items (tenant_id, order_id, sku, name, quantity, unit_price_cents)
         SELECT '{id}', id, 'sku-1', 'a thing', 1, 1999 FROM o"
    )))
    .execute(&mut shared)
    .await
    .unwrap();
    id
}

/// Moves `slug` to a database of its own on eu-west-2; the move operation's steps.
async fn move_tenant(orch: &Orchestrator, slug: &str) -> tenantry_catalog::model::Operation {
    let (_, op) = orch
        .request_move(slug, Isolation::Database, Some("eu-west-2"), "bench")
        .await
        .unwrap();
    orch.run(op.id, &NoProgress).await.unwrap()
}

fn step_time(op: &tenantry_catalog::model::Operation, name: &str) -> Duration {
    let step = op.steps.iter().find(|s| s.name == name).unwrap();
    (step.finished_at.unwrap() - step.started_at.unwrap())
        .to_std()
        .unwrap()
}

/// The plain copy of the tenant's rows of the storefront's tables, parents first, from the
/// shared database into a fresh, migrated database on the other server.
async fn plain_copy(from: &TestServer, to: &TestServer, tenant: &str) -> (u64, Duration) {
    let mut admin = connect(to, "postgres").await;
    for statement in [
        "DROP DATABASE IF EXISTS bench_plain",
        "CREATE DATABASE bench_plain",
    ] {
        sqlx::raw_sql(statement).execute(&mut admin).await.unwrap();
    }
    let app = tenantry_engines::Application::new(
        storefront().join("migrations"),
        storefront().join("seeds"),
    );
    let mut target = connect(to, "bench_plain").await;
    app.migrator(Engine::Postgres)
        .await
        .unwrap()
        .run_direct(None, &mut target, false)
        .await
        .unwrap();
    let mut source = connect(from, "tenantry_shared_eu_west").await;
    let started = Instant::now();
    let mut rows = 0;
    for table in ["customers", "orders", "order_items"] {
        sqlx::raw_sql("SET session_replication_role = replica")
            .execute(&mut target)
            .await
            .unwrap();
        let mut sink = target
            .copy_in_raw(&format!("COPY {table} FROM STDIN"))
            .await
            .unwrap();
        let mut out = source
            .copy_out_raw(&format!(
                "COPY (SELECT * FROM {table} WHERE tenant_id = '{tenant}') TO STDOUT"
            ))
            .await
            .unwrap();
        while let Some(chunk) = out.try_next().await.unwrap() {
            sink.send(chunk).await.unwrap();
        }
        drop(out);
        rows += sink.finish().await.unwrap();
    }
    (rows, started.elapsed())
}

#[tokio::main]
async fn main() {
    let customers = env_or("BENCH_MOVE_CUSTOMERS", 100_000);
    let pause_moves = env_or("BENCH_PAUSE_MOVES", 10);
    let pause_customers = env_or("BENCH_PAUSE_CUSTOMERS", 2_000);
    let Some(catalog) = TestDatabase::create("bench_moves").await else {
        eprintln!("PostgreSQL is unavailable: nothing measured");
        return;
    };
    let one = TestServer::start_durable().await.expect("shard eu-west-1");
    let two = TestServer::start_durable().await.expect("shard eu-west-2");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &catalog.url, &[&one, &two]);
    let store = tenantry_catalog::open(&config.catalog.url).await.unwrap();
    let orch = Orchestrator::new(config, store, "bench").await.unwrap();

    let big = tenant(&orch, &one, "big", customers).await;
    let (plain_rows, plain_took) = plain_copy(&one, &two, &big).await;
    let op = move_tenant(&orch, "big").await;
    let copied = op.params["copied"].as_i64().unwrap();
    let copy_took = step_time(&op, "copy");
    let rate = |rows: f64, took: Duration| rows / took.as_secs_f64();
    println!(
        "plain COPY out | COPY in of {plain_rows} rows: {:.0} ms ({:.0} rows/s)",
        plain_took.as_secs_f64() * 1000.0,
        rate(plain_rows as f64, plain_took)
    );
    println!(
        "tenantry move copy step of {copied} rows: {:.0} ms ({:.0} rows/s)",
        copy_took.as_secs_f64() * 1000.0,
        rate(copied as f64, copy_took)
    );
    println!(
        "move copy throughput vs plain COPY: {:.2}x",
        rate(copied as f64, copy_took) / rate(plain_rows as f64, plain_took)
    );
    println!(
        "whole move of the big tenant: {:.0} ms (switch {:.0} ms, write pause {} ms)",
        (op.finished_at.unwrap() - op.created_at).num_milliseconds(),
        step_time(&op, "switch").as_secs_f64() * 1000.0,
        paused_ms(&orch, "big").await
    );

    let mut pauses = Vec::new();
    for i in 0..pause_moves {
        let slug = format!("small-{i}");
        tenant(&orch, &one, &slug, pause_customers).await;
        move_tenant(&orch, &slug).await;
        pauses.push(paused_ms(&orch, &slug).await);
    }
    pauses.sort();
    println!(
        "write pause at the switch over {} moves of {} rows: median {} ms, max {} ms",
        pauses.len(),
        pause_customers * 3,
        pauses[pauses.len() / 2],
        pauses[pauses.len() - 1]
    );
}

/// How long the tenant's writes were paused at its move's switch (its `TenantMoved` event).
async fn paused_ms(orch: &Orchestrator, slug: &str) -> u64 {
    let t = orch.catalog().tenant_by_slug(slug).await.unwrap();
    let moved = orch
        .catalog()
        .events(Some(t.id), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == tenantry_core::events::EventType::TenantMoved)
        .unwrap();
    moved.payload["move"]["paused_ms"].as_u64().unwrap()
}
