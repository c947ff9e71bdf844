//! The router's cost and its connection budget, measured in one run.
//!
//! `cargo bench -p tenantry-router --bench router` (PostgreSQL server binaries needed: the
//! shard is a private server started by the benchmark).
//!
//! 1. Point reads per second, per isolation: `BENCH_READS` (default 20000) reads of one
//!    customer by id, by `BENCH_WORKERS` (default 8) concurrent tasks, through the router (a
//!    scoped transaction: the read and a commit) and, on the same server and database, on a
//!    plain pool of as many connections — the same transaction, the same opened with the
//!    router's scoping statement, and the bare query alone — in rounds taken in turn.
//! 2. `BENCH_DEDICATED` (default 2000) tenants with databases of their own, asked for one row
//!    by `BENCH_WORKERS` tasks — each tenant once in turn, then twice as many requests drawn
//!    from a Zipf distribution over the tenants — through a router whose budget is
//!    `BENCH_BUDGET` (default 50) connections, while a sampler counts the router's connections
//!    open on the server; beside each, the same requests each opening a connection of its own
//!    (what serving that many databases costs without pools).

#[path = "../tests/fleet/mod.rs"]
mod fleet;

use fleet::Fleet;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tenantry_catalog::model::Tenant;
use tenantry_core::Isolation;
use tenantry_router::{Router, RouterOptions, TenantKey};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CUSTOMERS: i64 = 1000;

/// Gives the tenant `CUSTOMERS` customers; returns their ids.
async fn fill(router: &Router, tenant: &Tenant) -> Vec<String> {
    let mut tx = router.begin(&TenantKey::Id(tenant.id)).await.unwrap();
    let c = tx.postgres().unwrap();
    sqlx::query(
        "INSERT INTO customers (tenant_id, email)
         SELECT $1, 'c' || g || '@bench.example' FROM generate_series(1, $2) g",
    )
    .bind(tenant.id.to_string())
    .bind(CUSTOMERS)
    .execute(&mut *c)
    .await
    .unwrap();
    let ids = sqlx::query_scalar("SELECT id::text FROM customers")
        .fetch_all(&mut *c)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

const READ: &str = "SELECT email FROM customers WHERE id = $1::uuid";

/// How a read is done.
#[derive(Clone)]
enum Reader {
    Router(Router, TenantKey),
    /// A plain transaction opened with this statement: `BEGIN`, or the router's scoping one.
    PlainTransaction(PgPool, String),
    PlainQuery(PgPool),
}

impl Reader {
    async fn read(&self, id: &str) {
        let email: String = match self {
            Reader::Router(router, key) => {
                let mut tx = router.begin(key).await.unwrap();
                let email = sqlx::query_scalar(READ)
                    .bind(id)
                    .fetch_one(tx.postgres().unwrap())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                email
            }
            Reader::PlainTransaction(pool, begin) => {
                let mut tx = pool
                    .begin_with(sqlx::AssertSqlSafe(begin.clone()))
                    .await
                    .unwrap();
                let email = sqlx::query_scalar(READ)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                email
            }
            Reader::PlainQuery(pool) => sqlx::query_scalar(READ)
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap(),
        };
        assert!(email.ends_with("@bench.example"));
    }
}

/// Reads per second of `reads` reads by `workers` tasks.
async fn rate(reader: &Reader, ids: &Arc<Vec<String>>, reads: usize, workers: usize) -> f64 {
    // Warm up: every connection open, every statement prepared.
    for id in ids.iter().take(workers * 4) {
        reader.read(id).await;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (reader, ids) = (reader.clone(), Arc::clone(ids));
            tokio::spawn(async move {
                for i in (w..reads).step_by(workers) {
                    reader.read(&ids[i % ids.len()]).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    reads as f64 / started.elapsed().as_secs_f64()
}

/// A plain pool of `size` connections into the tenant's place, as the server's superuser.
fn plain_pool(fleet: &Fleet, tenant: &Tenant, size: u32) -> PgPool {
    let space = tenant.space.as_ref().unwrap();
    let url = fleet.url_as("postgres", space.database.as_deref().unwrap());
    let mut options = PgConnectOptions::from_str(&url).unwrap();
    if let Some(schema) = &space.schema {
        options = options.options([("search_path", schema.as_str())]);
    }
    PgPoolOptions::new()
        .max_connections(size)
        .connect_lazy_with(options)
}

/// Rounds of each reader per isolation; the median is reported.
const ROUNDS: usize = 5;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn point_reads(fleet: &Fleet, reads: usize, workers: usize) {
    let size = workers as u32;
    let router = fleet.router(RouterOptions {
        shared_connections: size,
        per_tenant_connections: size,
        max_tenant_connections: workers,
        ..RouterOptions::default()
    });
    println!(
        "\n## Point reads ({reads} reads of one customer by id per reader, in {ROUNDS} rounds taken in turn, median; {workers} tasks, pools of {size})\n"
    );
    println!(
        "| isolation | router | plain transaction | router / plain transaction | plain, scoped by hand | router / scoped by hand | plain query | router / plain query |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for isolation in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let tenant = fleet.tenant(&format!("reads-{isolation}"), isolation).await;
        let ids = Arc::new(fill(&router, &tenant).await);
        let pool = plain_pool(fleet, &tenant, size);
        // Hint bits and statistics settled, so that no reader pays for the inserts.
        sqlx::query("VACUUM ANALYZE customers")
            .execute(&pool)
            .await
            .unwrap();
        let mut begin = format!("BEGIN; SET LOCAL tenantry.tenant_id = '{}'", tenant.id);
        if let Some(schema) = &tenant.space.as_ref().unwrap().schema {
            begin.push_str(&format!("; SET LOCAL search_path = \"{schema}\""));
        }
        let readers = [
            Reader::Router(router.clone(), TenantKey::Id(tenant.id)),
            Reader::PlainTransaction(pool.clone(), "BEGIN".into()),
            Reader::PlainTransaction(pool.clone(), begin),
            Reader::PlainQuery(pool.clone()),
        ];
        // Rounds in turn, so that what the machine does meanwhile falls on all alike.
        let mut rates = vec![Vec::new(); readers.len()];
        for _ in 0..ROUNDS {
            for (reader, rates) in readers.iter().zip(&mut rates) {
                rates.push(rate(reader, &ids, reads / ROUNDS, workers).await);
            }
        }
        let [routed, plain_tx, scoped, plain_query] = [0, 1, 2, 3].map(|i| median(&mut rates[i]));
        pool.close().await;
        println!(
            "| {isolation} | {routed:.0}/s | {plain_tx:.0}/s | {:.2} | {scoped:.0}/s | {:.2} | {plain_query:.0}/s | {:.2} |",
            routed / plain_tx,
            routed / scoped,
            routed / plain_query
        );
    }
    router.close().await;
}

/// The router's connections open on the server now.
async fn router_connections(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE application_name = 'tenantry-router' AND usename <> 'tenantry_app'",
    )
    .fetch_one(admin)
    .await
    .unwrap()
}

async fn many_dedicated(fleet: &Fleet, count: usize, budget: usize, workers: usize) {
    println!(
        "\n## {count} dedicated tenants under a budget of {budget} connections ({workers} tasks)\n"
    );
    let started = Instant::now();
    let mut tenants = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(4) {
        let made = futures::future::join_all(chunk.iter().map(|i| async move {
            fleet
                .tenant(&format!("dedicated-{i}"), Isolation::Database)
                .await
        }))
        .await;
        tenants.extend(made);
        if tenants.len() % 200 == 0 {
            eprintln!(
                "provisioned {} of {count} ({:.0} s)",
                tenants.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let tenants = Arc::new(tenants);
    let router = fleet.router(RouterOptions {
        max_tenant_connections: budget,
        per_tenant_connections: 1,
        ..RouterOptions::default()
    });

    // Samples, every 5 ms while it serves, the router's connections as the server lists them
    // and the router's budget given out.
    let most = Arc::new(AtomicI64::new(0));
    let most_reserved = Arc::new(AtomicI64::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let (most, url) = (Arc::clone(&most), fleet.url_as("postgres", "postgres"));
        let (most_reserved, router) = (Arc::clone(&most_reserved), router.clone());
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut admin = PgConnection::connect(&url).await.unwrap();
            let mut samples = 0u64;
            while !*stopped.borrow() {
                most.fetch_max(router_connections(&mut admin).await, Ordering::SeqCst);
                let reserved = router.dedicated_usage().reserved as i64;
                most_reserved.fetch_max(reserved, Ordering::SeqCst);
                samples += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    _ = stopped.changed() => {}
                }
            }
            samples
        })
    };
    // Every tenant once, in turn (each a miss once the budget is spent), then traffic as
    // tenants' traffic is: skewed, a Zipf distribution (s = 1) over the tenants.
    let each_once: Vec<usize> = (0..count).collect();
    let skewed = zipf(count, count * 2);
    let mut rows = Vec::new();
    for (phase, sequence) in [("each tenant once", &each_once), ("Zipf-skewed", &skewed)] {
        let sequence = Arc::new(sequence.clone());
        let routed = serve(&router, &tenants, &sequence, workers, None).await;
        let server = fleet.url_as("postgres", "postgres");
        let connect_each = serve(&router, &tenants, &sequence, workers, Some(&server)).await;
        rows.push((phase, sequence.len(), routed, connect_each));
    }
    stop.send(true).unwrap();
    let samples = sampler.await.unwrap();
    let (most, most_reserved) = (
        most.load(Ordering::SeqCst),
        most_reserved.load(Ordering::SeqCst),
    );
    println!("| requests | n | router, budget {budget} | a new connection per request | ratio |");
    println!("|---|---|---|---|---|");
    for (phase, n, routed, connect_each) in rows {
        println!(
            "| {phase} | {n} | {routed:.0}/s | {connect_each:.0}/s | {:.2} |",
            routed / connect_each
        );
    }
    println!(
        "\nat most, of a budget of {budget} ({samples} samples, every 5 ms): the router gave out {most_reserved} \
         (held: {}); the server listed {most} of its connections (a closed connection's backend \
         stays listed until its process has exited)",
        most_reserved <= budget as i64
    );
    router.close().await;
}

/// `n` tenant indexes drawn from a Zipf distribution (s = 1) over `count` tenants, seeded.
fn zipf(count: usize, n: usize) -> Vec<usize> {
    use rand::{Rng, SeedableRng};
    let mut cumulative = Vec::with_capacity(count);
    let mut total = 0.0;
    for rank in 1..=count {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..n)
        .map(|_| {
            let u = rng.random::<f64>() * total;
            cumulative.partition_point(|&c| c < u).min(count - 1)
        })
        .collect()
}

/// Requests per second serving `sequence` (indexes into `tenants`) with `workers` tasks, one
/// row each: through the router, or (with `server`, the superuser's URL) on a connection opened
/// for the request.
async fn serve(
    router: &Router,
    tenants: &Arc<Vec<Tenant>>,
    sequence: &Arc<Vec<usize>>,
    workers: usize,
    server: Option<&str>,
) -> f64 {
    const QUERY: &str = "SELECT count(*) FROM store_settings";
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (router, tenants, sequence) =
                (router.clone(), Arc::clone(tenants), Arc::clone(sequence));
            let server = server.map(str::to_owned);
            tokio::spawn(async move {
                for i in (w..sequence.len()).step_by(workers) {
                    let tenant = &tenants[sequence[i]];
                    let rows: i64 = match &server {
                        Some(server) => {
                            let database =
                                tenant.space.as_ref().unwrap().database.as_deref().unwrap();
                            let url = server.replace("/postgres", &format!("/{database}"));
                            let mut conn = PgConnection::connect(&url).await.unwrap();
                            let rows = sqlx::query_scalar(QUERY)
                                .fetch_one(&mut conn)
                                .await
                                .unwrap();
                            conn.close().await.unwrap();
                            rows
                        }
                        None => {
                            let mut tx = router.begin(&TenantKey::Id(tenant.id)).await.unwrap();
                            let rows = sqlx::query_scalar(QUERY)
                                .fetch_one(tx.postgres().unwrap())
                                .await
                                .unwrap();
                            tx.commit().await.unwrap();
                            rows
                        }
                    };
                    assert_eq!(rows, 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    sequence.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let Some(fleet) = Fleet::postgres().await else {
        eprintln!("the router benchmark needs the PostgreSQL server binaries");
        return;
    };
    let workers = env_or("BENCH_WORKERS", 8);
    point_reads(&fleet, env_or("BENCH_READS", 20_000), workers).await;
    let dedicated = env_or("BENCH_DEDICATED", 2000);
    if dedicated > 0 {
        many_dedicated(&fleet, dedicated, env_or("BENCH_BUDGET", 50), workers).await;
    }
}
