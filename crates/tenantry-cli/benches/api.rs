//! API benchmark: the real server stack in process — `tenantry init`'s SQLite configuration in
//! a temporary directory, the orchestrator, the axum router with token checks and metrics
//! middleware, and a worker like `tenantry serve`'s — driven over HTTP on loopback by N
//! concurrent clients.
//!
//! Measured: `GET /api/v1/tenants/{slug}`; `POST /api/v1/tenants` (shared isolation) both to
//! its `202 Accepted` and until its operation has succeeded; and, as baselines in the same run,
//! `GET /healthz` (HTTP and routing only) and the bare catalog lookup the GET handler makes.
//!
//! `cargo bench -p tenantry-cli --bench api` (env: `BENCH_CONCURRENCY`, default 8;
//! `BENCH_REQUESTS` per GET series, default 5000; `BENCH_CREATES` per POST series, default 100).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tenantry_api::tokens::CatalogTokens;
use tenantry_api::{AppState, Scope};
use tenantry_core::config::Config;
use tenantry_orchestrator::{NoProgress, Orchestrator};
use tokio::sync::Notify;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One series' result.
struct Series {
    name: String,
    count: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Series {
    fn new(name: &str, wall: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        Self {
            name: name.to_owned(),
            count: latencies.len(),
            wall,
            latencies,
        }
    }

    fn rps(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64()
    }

    fn pct(&self, p: f64) -> Duration {
        let idx = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies[idx.min(self.latencies.len() - 1)]
    }

    fn print(&self) {
        println!(
            "{:<44} {:>6} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            self.name,
            self.count,
            self.rps(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99)),
            ms(*self.latencies.last().unwrap())
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `total` calls of `call` on `concurrency` tasks; each call's latency is recorded.
async fn hammer<F, Fut>(name: &str, concurrency: usize, total: usize, call: F) -> Series
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut own = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return own;
                }
                let t = Instant::now();
                call(i).await;
                own.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.expect("bench task"));
    }
    Series::new(name, start.elapsed(), latencies)
}

/// Runs queued operations as `tenantry serve`'s worker does: at once when woken.
async fn worker(orch: Arc<Orchestrator>, work: Arc<Notify>) {
    loop {
        while let Ok(Some(_)) = orch.work_once(&NoProgress).await {}
        tokio::select! {
            _ = work.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn wait_for(client: &reqwest::Client, url: &str, token: &str) {
    loop {
        let op: serde_json::Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET operation")
            .json()
            .await
            .expect("operation JSON");
        match op["state"].as_str() {
            Some("succeeded") => return,
            Some("failed") => panic!("provisioning failed: {op}"),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let requests = env_usize("BENCH_REQUESTS", 5000);
    let creates = env_usize("BENCH_CREATES", 100);

    let dir = tempfile::tempdir().expect("temporary directory");
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(["init"])
        .arg(dir.path())
        .output()
        .expect("tenantry init");
    assert!(init.status.success(), "tenantry init failed");
    std::env::set_current_dir(dir.path()).expect("cd");
    let config = Arc::new(Config::load(&dir.path().join("tenantry.toml")).expect("config"));
    let catalog = tenantry_catalog::open(&config.catalog.url)
        .await
        .expect("catalog");
    let orch = Arc::new(
        Orchestrator::new(config, catalog.clone(), "bench".to_owned())
            .await
            .expect("orchestrator"),
    );
    let (_, token) = tenantry_api::tokens::issue(catalog.as_ref(), "bench", Scope::Operator)
        .await
        .expect("token");
    let work = Arc::new(Notify::new());
    let state = AppState {
        orch: orch.clone(),
        tokens: Arc::new(CatalogTokens(catalog.clone())),
        work: work.clone(),
        sinks: None,
        reconciliation: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        axum::serve(listener, tenantry_api::router(state))
            .await
            .expect("serve")
    });
    tokio::spawn(worker(orch.clone(), work));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");

    // One tenant to read.
    let accepted: serde_json::Value = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "slug": "acme", "plan": "standard", "region": "eu-west" }))
        .send()
        .await
        .expect("create acme")
        .json()
        .await
        .expect("accepted");
    let op_url = format!("{base}{}", accepted["operation_url"].as_str().unwrap());
    wait_for(&client, &op_url, &token).await;

    // Warm up connections and caches.
    let warm = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        hammer("warm-up", concurrency, 500, move |_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let r = client
                    .get(format!("{base}/api/v1/tenants/acme"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("GET");
                assert!(r.status().is_success());
            }
        })
        .await
    };
    drop(warm);

    let healthz = {
        let (client, base) = (client.clone(), base.clone());
        hammer(
            "GET /healthz (baseline)",
            concurrency,
            requests,
            move |_| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let r = client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .expect("GET");
                    assert!(r.status().is_success());
                }
            },
        )
        .await
    };
    let lookup = {
        let catalog = catalog.clone();
        hammer(
            "catalog tenant_by_slug (baseline)",
            concurrency,
            requests,
            move |_| {
                let catalog = catalog.clone();
                async move {
                    catalog.tenant_by_slug("acme").await.expect("lookup");
                }
            },
        )
        .await
    };
    let show = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        hammer(
            "GET /api/v1/tenants/{slug}",
            concurrency,
            requests,
            move |_| {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                async move {
                    let r = client
                        .get(format!("{base}/api/v1/tenants/acme"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("GET");
                    assert!(r.status().is_success());
                    r.bytes().await.expect("body");
                }
            },
        )
        .await
    };

    // POST to 202 only; then the time until the worker has finished them all.
    let post = |prefix: &'static str, wait: bool| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        move |i: usize| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let r = client
                    .post(format!("{base}/api/v1/tenants"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "slug": format!("{prefix}-{i}"), "plan": "standard", "region": "eu-west"
                    }))
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
                let body: serde_json::Value = r.json().await.expect("accepted");
                if wait {
                    let url = format!("{base}{}", body["operation_url"].as_str().unwrap());
                    wait_for(&client, &url, &token).await;
                }
            }
        }
    };
    let start = Instant::now();
    let accepted = hammer(
        "POST /api/v1/tenants → 202",
        concurrency,
        creates,
        post("queued", false),
    )
    .await;
    loop {
        if orch
            .open_operations()
            .await
            .expect("open operations")
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = start.elapsed();
    let completed = hammer(
        "POST /api/v1/tenants → operation succeeded",
        concurrency,
        creates,
        post("waited", true),
    )
    .await;

    println!();
    println!(
        "concurrency {concurrency}, SQLite catalog and shards on a temporary directory, one worker"
    );
    println!(
        "{:<44} {:>6} {:>10} {:>9} {:>9} {:>9}",
        "series", "n", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for s in [&healthz, &lookup, &show, &accepted, &completed] {
        s.print();
    }
    println!(
        "{:<44} {:>6} {:>10.1}   (202s queued at once, drained by the worker)",
        "POST → 202, then all provisioned",
        creates,
        creates as f64 / drained.as_secs_f64()
    );
    println!();
    println!(
        "GET tenant vs GET /healthz: {:.2}x the throughput, {:.2}x the p99",
        show.rps() / healthz.rps(),
        ms(show.pct(0.99)) / ms(healthz.pct(0.99))
    );
    println!(
        "GET tenant vs bare catalog lookup: {:.2}x the throughput, {:.2}x the p99",
        show.rps() / lookup.rps(),
        ms(show.pct(0.99)) / ms(lookup.pct(0.99))
    );
}
