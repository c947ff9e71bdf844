//! Lifecycle events leave through real receivers: a webhook served by the test that fails
//! three times before accepting, and a NATS server (started by the test, so that it can be
//! stopped and restarted) with JetStream.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::make_test_env;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Serve {
    fn start(env: &common::Env, vars: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("tenantry"));
        cmd.current_dir(env.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().starts_with("tenantry serving") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Serve(child)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn outbox(env: &common::Env) -> Vec<Value> {
    common::as_array(env.json(&["events", "list"]))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_still_gets_every_event_in_order_and_signed() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let failures = Arc::new(Mutex::new(3));
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let received = received.clone();
                let failures = failures.clone();
                async move {
                    let sig = headers["tenantry-signature"].to_str().unwrap().to_owned();
                    let now = chrono::Utc::now().timestamp();
                    if !tenantry_events::webhook::verify(
                        b"hook-secret",
                        &sig,
                        &body,
                        now,
                        Duration::from_secs(300),
                    ) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = make_test_env();
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let config = config.replace(
        "[application]",
        &format!(
            "[events]\nrelay_interval_ms = 100\n[[events.webhooks]]\nname = \"test\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"TEST_HOOK_SECRET\"\n\n[application]"
        ),
    );
    env.replace_config(&config);
    let _serve = Serve::start(&env, &[("TEST_HOOK_SECRET", "hook-secret")]);
    env.create("acme", "standard", "eu-west", &[]);
    env.tenantry(["tenant", "suspend", "acme"]).success();
    env.create("globex", "premium", "us-east", &[]);
    let expected: Vec<String> = outbox(&env)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let got = until("every event at the webhook", || {
        let r = received.lock().unwrap();
        (r.len() >= expected.len()).then(|| r.clone())
    });
    let ids: Vec<String> = got
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected, "each event once, in outbox order");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nats {
    child: Child,
}

fn start_nats(port: u16, store: &std::path::Path) -> Option<Nats> {
    let bin = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        return tenantry_testkit::missing("nats-server");
    };
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    until("nats-server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Some(Nats { child })
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_receives_every_event_once_even_across_a_broker_restart() {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(nats) = start_nats(port, store.path()) else {
        return;
    };
    let env = make_test_env();
    let config = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "[application]",
        &format!(
            "[events]\nrelay_interval_ms = 100\n[events.nats]\nurl = \"nats://127.0.0.1:{port}\"\nstream = \"TENANTRY_TEST\"\nsubject_prefix = \"test.events\"\n\n[application]"
        ),
    );
    env.replace_config(&config);
    let serve = Serve::start(&env, &[]);
    env.create("acme", "standard", "eu-west", &[]);
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let count = |js: async_nats::jetstream::Context| async move {
        match js.get_stream("TENANTRY_TEST").await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(js.clone()).await < 3 {
        assert!(Instant::now() < deadline, "first events never reached NATS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stop the broker, write events while it is down, restart it.
    drop(nats);
    env.tenantry(["tenant", "suspend", "acme"]).success();
    env.create("globex", "premium", "us-east", &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _nats = start_nats(port, store.path()).unwrap();
    let total = outbox(&env).len() as u64;
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(js.clone()).await < total {
        assert!(
            Instant::now() < deadline,
            "events written while NATS was down never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Restarting the server makes the relay deliver again what it was unsure of; the broker's
    // de-duplication keeps exactly one message per event.
    drop(serve);
    let _again = Serve::start(&env, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(js.clone()).await, total, "each event exactly once");
    // And in per-tenant order.
    let stream = js.get_stream("TENANTRY_TEST").await.unwrap();
    let mut seqs_by_tenant: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for n in 1..=total {
        let msg = stream.get_raw_message(n).await.unwrap();
        let body: Value = serde_json::from_slice(&msg.payload).unwrap();
        seqs_by_tenant
            .entry(body["tenant_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["seq"].as_i64().unwrap());
    }
    for seqs in seqs_by_tenant.values() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "per-tenant order: {seqs:?}"
        );
    }
}
