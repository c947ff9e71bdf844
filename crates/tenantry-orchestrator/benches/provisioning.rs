//! Provisioning latency per isolation, and fleet-migration parallelism, measured in one run.
//!
//! `cargo bench -p tenantry-orchestrator --bench provisioning` (PostgreSQL needed: the local
//! server holds the catalog; a private server started from the PostgreSQL binaries, syncing to
//! disk like a production one, is the shard).
//! Prints, per isolation, the median and p95 latency of a whole provisioning (request, every
//! step, activation) — from the warm pool both with the pool's next database warmed before each
//! sign-up and back to back, where each provisioning overlaps the previous one's warm-up — the
//! pool-versus-create ratio, and the fleet migration of 500 schema
//! tenants at concurrency 1 and 4 with their ratio. `BENCH_TENANTS` changes the sample size;
//! `BENCH_TRACE` (a tracing filter) prints the steps and statements as they run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenantry_core::config::Config;
use tenantry_orchestrator::fleet::{FleetSelection, NoFleetProgress};
use tenantry_orchestrator::{NoProgress, Orchestrator, ProvisionRequest};
use tenantry_testkit::postgres::{TestDatabase, TestServer};
use uuid::Uuid;

fn storefront() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront")
}

/// Copies the storefront into `dir/app` so that benchmark migrations can be added to it.
fn copy_app(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    for sub in ["migrations/sqlite", "migrations/postgres", "seeds"] {
        std::fs::create_dir_all(app.join(sub)).unwrap();
        for entry in std::fs::read_dir(storefront().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, app.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    app
}

fn config(dir: &Path, catalog: &str, shard: &str) -> Arc<Config> {
    let common = tenantry_core::config::DEFAULT_TOML;
    let plans = &common[common.find("# Plans:").unwrap()..];
    let text = format!(
        r#"
[catalog]
url = "{catalog}"
[storage]
root = "data/storage"
[secrets]
master_key_file = "master.key"
[application]
name = "storefront"
migrations = "app/migrations"
seeds = "app/seeds"
[regions.eu-west]
{shard}
{plans}"#
    );
    let path = dir.join("tenantry.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        dir.join("master.key"),
        tenantry_core::secrets::MasterKey::generate().to_base64(),
    )
    .unwrap();
    Arc::new(Config::load(&path).unwrap())
}

async fn orchestrator(config: Arc<Config>) -> Orchestrator {
    let catalog = tenantry_catalog::open(&config.catalog.url).await.unwrap();
    Orchestrator::new(config, catalog, "bench").await.unwrap()
}

async fn provision(orch: &Orchestrator, slug: &str, plan: &str) -> (Duration, Uuid) {
    let started = Instant::now();
    let req = ProvisionRequest {
        slug: slug.into(),
        plan: plan.into(),
        region: "eu-west".into(),
        ..ProvisionRequest::default()
    };
    let (_, op) = orch.request_provision(&req).await.unwrap();
    orch.run(op.id, &NoProgress).await.unwrap();
    (started.elapsed(), op.id)
}

struct Stats {
    label: String,
    n: usize,
    median: Duration,
    p95: Duration,
}

fn stats(label: &str, mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        label: label.into(),
        n: samples.len(),
        median: at(0.5),
        p95: at(0.95),
    }
}

/// Provisions `n` tenants one after the other; their latencies and operation ids.
async fn measure(
    orch: &Orchestrator,
    prefix: &str,
    plan: &str,
    n: usize,
) -> (Vec<Duration>, Vec<Uuid>) {
    measure_with(orch, prefix, plan, n, || async {}).await
}

/// [`measure`], running `before` (untimed) before each provisioning.
async fn measure_with<F, Fut>(
    orch: &Orchestrator,
    prefix: &str,
    plan: &str,
    n: usize,
    before: F,
) -> (Vec<Duration>, Vec<Uuid>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        before().await;
        let (took, op) = provision(orch, &format!("{prefix}-{i}"), plan).await;
        out.0.push(took);
        out.1.push(op);
    }
    out
}

/// The median duration of each step over `ops`, as the catalog recorded them: where a
/// provisioning spends its time.
async fn step_medians(orch: &Orchestrator, ops: &[Uuid]) -> Vec<(String, Duration)> {
    let mut per_step: Vec<(String, Vec<Duration>)> = Vec::new();
    for id in ops {
        let op = orch.catalog().operation(*id).await.unwrap();
        for step in op.steps {
            let took = match (step.started_at, step.finished_at) {
                (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
                _ => continue,
            };
            match per_step.iter_mut().find(|(name, _)| *name == step.name) {
                Some((_, v)) => v.push(took),
                None => per_step.push((step.name, vec![took])),
            }
        }
    }
    per_step
        .into_iter()
        .map(|(name, v)| (name, stats("", v).median))
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // `BENCH_TRACE=tenantry_orchestrator=info,sqlx::query=debug` prints every step and every
    // statement with its time, on stderr: where a provisioning's time goes, statement by
    // statement.
    if let Ok(filter) = std::env::var("BENCH_TRACE") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let fleet: usize = std::env::var("BENCH_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut rows = Vec::new();

    // SQLite: the embedded default.
    let dir = tempfile::tempdir().unwrap();
    copy_app(dir.path());
    let sqlite_shard = r#"[[shards]]
name = "eu-west-1"
region = "eu-west"
engine = "sqlite"
directory = "data/shards/eu-west-1""#;
    let orch = orchestrator(config(dir.path(), "sqlite://data/catalog.db", sqlite_shard)).await;
    rows.push(stats(
        "sqlite shared",
        measure(&orch, "ss", "standard", n).await.0,
    ));
    rows.push(stats(
        "sqlite database",
        measure(&orch, "sd", "premium", n).await.0,
    ));
    drop(orch);

    // PostgreSQL: catalog on the local server, the shard on a private server.
    let Some(catalog) = TestDatabase::create("bench_catalog").await else {
        print_rows(&rows);
        eprintln!("PostgreSQL is unavailable: only the SQLite rows were measured");
        return;
    };
    let server = TestServer::start_durable()
        .await
        .expect("a PostgreSQL server for the shard");
    let dir = tempfile::tempdir().unwrap();
    let app = copy_app(dir.path());
    let pg_shard = format!(
        "[[shards]]\nname = \"eu-west-1\"\nregion = \"eu-west\"\nengine = \"postgres\"\nurl = \"{}\"\ncapacity = 100000",
        server.url
    );
    let orch = orchestrator(config(dir.path(), &catalog.url, &pg_shard)).await;
    rows.push(stats(
        "postgres shared",
        measure(&orch, "ps", "standard", n).await.0,
    ));
    rows.push(stats(
        "postgres schema",
        measure(&orch, "pc", "business", n).await.0,
    ));
    let (created, created_ops) = measure(&orch, "pd", "premium", n).await;
    rows.push(stats("postgres database (created)", created));
    orch.fill_pool("eu-west-1", 2 * n as u32, &|_| {})
        .await
        .unwrap();
    // A sign-up finds the pool warm: the warm-up a provisioning starts for the next pooled
    // database once it is done is pool upkeep, like the fill, and is awaited between
    // provisionings (untimed).
    let (pooled, pooled_ops) = measure_with(&orch, "pp", "premium", n, || async {
        orch.keep_pool_warm("eu-west-1").await.unwrap()
    })
    .await;
    rows.push(stats("postgres database (warm pool)", pooled));
    // Back to back, each provisioning overlaps the warm-up the previous one started.
    rows.push(stats(
        "postgres database (pool, back to back)",
        measure(&orch, "pb", "premium", n).await.0,
    ));
    print_rows(&rows);
    let created_steps = step_medians(&orch, &created_ops).await;
    let pooled_steps = step_medians(&orch, &pooled_ops).await;
    println!(
        "{:<32} {:>12} {:>12}",
        "step (median)", "created", "warm pool"
    );
    for ((name, c), (_, p)) in created_steps.iter().zip(&pooled_steps) {
        println!("{:<32} {:>12} {:>12}", name, ms(*c), ms(*p));
    }
    let created = rows
        .iter()
        .find(|r| r.label == "postgres database (created)")
        .unwrap();
    let pooled = rows
        .iter()
        .find(|r| r.label == "postgres database (warm pool)")
        .unwrap();
    println!(
        "warm pool vs create: {:.1}x faster (median {} vs {})",
        created.median.as_secs_f64() / pooled.median.as_secs_f64(),
        ms(pooled.median),
        ms(created.median)
    );
    // The part of a provisioning the pool replaces: a migrated database of the tenant's own.
    let ready = |steps: &[(String, Duration)]| -> Duration {
        steps
            .iter()
            .filter(|(name, _)| name == "create_space" || name == "migrate")
            .map(|(_, d)| *d)
            .sum()
    };
    let (ready_created, ready_pooled) = (ready(&created_steps), ready(&pooled_steps));
    println!(
        "migrated database ready (create_space + migrate): {:.1}x faster from the pool ({} vs {})",
        ready_created.as_secs_f64() / ready_pooled.as_secs_f64(),
        ms(ready_pooled),
        ms(ready_created)
    );

    // Fleet migration of schema tenants at concurrency 1, then 4, each applying one migration.
    let existing = n; // the schema tenants above
    for i in existing..fleet {
        provision(&orch, &format!("pc-{i}"), "business").await;
    }
    let selection = FleetSelection {
        isolation: Some(tenantry_core::Isolation::Schema),
        ..FleetSelection::default()
    };
    let mut timings = Vec::new();
    for (version, concurrency) in [(5, 1usize), (6, 4usize)] {
        std::fs::write(
            app.join(format!(
                "migrations/postgres/{version:04}_bench_{concurrency}.sql"
            )),
            format!("CREATE TABLE bench_{version} (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL);"),
        )
        .unwrap();
        let started = Instant::now();
        let results = orch
            .migrate_fleet(&selection, concurrency, false, &NoFleetProgress)
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(results.len(), fleet, "every schema tenant was selected");
        println!(
            "fleet migration of {fleet} schema tenants at concurrency {concurrency}: {} ({:.1} spaces/s)",
            ms(took),
            fleet as f64 / took.as_secs_f64()
        );
        timings.push(took);
    }
    println!(
        "concurrency 4 vs 1: {:.2}x faster",
        timings[0].as_secs_f64() / timings[1].as_secs_f64()
    );
}

fn print_rows(rows: &[Stats]) {
    println!(
        "{:<32} {:>5} {:>12} {:>12}",
        "provisioning", "n", "median", "p95"
    );
    for r in rows {
        println!(
            "{:<32} {:>5} {:>12} {:>12}",
            r.label,
            r.n,
            ms(r.median),
            ms(r.p95)
        );
    }
}
