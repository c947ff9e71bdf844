//! The REST API under load: requests per second and latency percentiles of
//! `GET /api/v1/tenants/{slug}` and `POST /api/v1/tenants` (shared isolation), beside
//! `GET /healthz` (routing, HTTP and the metrics layer, no token and no catalog) measured in
//! the same run.
//!
//! `cargo bench -p tenantry-cli --bench api` starts the real `tenantry serve` (release build) on
//! the embedded default (SQLite catalog and shards in a temporary directory) and drives it over
//! TCP with `BENCH_CONCURRENCY` clients (16 by default) for `BENCH_REQUESTS` requests per route
//! (2,000 by default; a tenth of that for POST, each of which provisions a tenant).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TENANTRY: &str = env!("CARGO_BIN_EXE_tenantry");

/// A `tenantry serve` in a temporary application, stopped when dropped.
struct Served {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tenantry(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(TENANTRY)
        .current_dir(dir)
        .args(args)
        .env_remove("TENANTRY_CONFIG")
        .output()
        .expect("run tenantry");
    assert!(
        out.status.success(),
        "tenantry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Initialises an application, makes an operator token, and starts serving it.
fn serve() -> (Served, String) {
    let dir = tempfile::tempdir().unwrap();
    tenantry(dir.path(), &["init", "."]);
    let token: Value = serde_json::from_str(&tenantry(
        dir.path(),
        &[
            "token", "create", "--scope", "operator", "--name", "bench", "--output", "json",
        ],
    ))
    .unwrap();
    let mut child = Command::new(TENANTRY)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"])
        .env_remove("TENANTRY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tenantry serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("tenantry serving http://") {
            break format!("http://{}", rest.split('/').next().unwrap());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let served = Served {
        child,
        base,
        _dir: dir,
    };
    (served, token["token"].as_str().unwrap().to_owned())
}

/// What one route did under load.
struct Run {
    label: String,
    requests: usize,
    took: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.took.as_secs_f64()
    }

    fn at(&self, q: f64) -> Duration {
        self.latencies[((self.latencies.len() as f64 - 1.0) * q).round() as usize]
    }
}

/// Sends `requests` requests from `concurrency` clients; `request(i)` sends the i-th one and
/// checks its answer.
async fn load<F, Fut>(label: &str, requests: usize, concurrency: usize, request: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (request, next) = (request.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return latencies;
                }
                let sent = Instant::now();
                request(i).await;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    let took = started.elapsed();
    latencies.sort();
    Run {
        label: label.into(),
        requests,
        took,
        latencies,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let env_number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let concurrency = env_number("BENCH_CONCURRENCY", 16);
    let requests = env_number("BENCH_REQUESTS", 2000);
    let (served, token) = serve();
    let base = Arc::new(served.base.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let token = Arc::new(token);

    // One tenant to read.
    let created = client
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(&*token)
        .json(&json!({ "slug": "acme", "plan": "standard", "region": "eu-west" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    wait_active(&client, &base, &token, "acme").await;

    let mut runs = Vec::new();
    let (c, b) = (client.clone(), base.clone());
    runs.push(
        load(
            "GET /healthz (baseline)",
            requests,
            concurrency,
            move |_| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    let res = c.get(format!("{b}/healthz")).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                }
            },
        )
        .await,
    );
    let (c, b, t) = (client.clone(), base.clone(), token.clone());
    runs.push(
        load(
            "GET /api/v1/tenants/{slug}",
            requests,
            concurrency,
            move |_| {
                let (c, b, t) = (c.clone(), b.clone(), t.clone());
                async move {
                    let res = c
                        .get(format!("{b}/api/v1/tenants/acme"))
                        .bearer_auth(&*t)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                }
            },
        )
        .await,
    );
    let posts = (requests / 10).max(1);
    let (c, b, t) = (client.clone(), base.clone(), token.clone());
    let started = Instant::now();
    runs.push(
        load(
            "POST /api/v1/tenants (202)",
            posts,
            concurrency,
            move |i| {
                let (c, b, t) = (c.clone(), b.clone(), t.clone());
                async move {
                    let res = c
                        .post(format!("{b}/api/v1/tenants"))
                        .bearer_auth(&*t)
                        .json(&json!({ "slug": format!("t{i}"), "plan": "standard", "region": "eu-west" }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 202);
                }
            },
        )
        .await,
    );
    for i in 0..posts {
        wait_active(&client, &base, &token, &format!("t{i}")).await;
    }
    let provisioned = started.elapsed();

    println!(
        "{:<32} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "route", "requests", "req/s", "p50", "p99", "max"
    );
    for r in &runs {
        println!(
            "{:<32} {:>8} {:>12.0} {:>10} {:>10} {:>10}",
            r.label,
            r.requests,
            r.rps(),
            ms(r.at(0.5)),
            ms(r.at(0.99)),
            ms(r.at(1.0))
        );
    }
    println!(
        "GET /tenants/{{slug}} vs /healthz: {:.2}x the baseline's time per request (p50)",
        runs[1].at(0.5).as_secs_f64() / runs[0].at(0.5).as_secs_f64()
    );
    println!(
        "{posts} POSTed tenants active after {} ({:.1} tenants/s end to end, shared, SQLite), concurrency {concurrency}",
        ms(provisioned),
        posts as f64 / provisioned.as_secs_f64()
    );
}

/// Polls a tenant until it is active.
async fn wait_active(client: &reqwest::Client, base: &str, token: &str, slug: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t: Value = client
            .get(format!("{base}/api/v1/tenants/{slug}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["state"] == "active" {
            return;
        }
        assert_ne!(t["state"], "failed", "{t}");
        assert!(Instant::now() < deadline, "{slug} never became active: {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
