//! The S3 backend against a real S3-compatible server: moto's server (`pip install
//! 'moto[server]'`), started by the test on a free port with a bucket of its own. Where it is
//! missing the test fails in CI (`CI` set) and is skipped with a reason elsewhere.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tenantry_core::TenantId;
use tenantry_core::config::S3Config;
use tenantry_infra::TenantStorage;

/// A moto server, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let reason = format!(
                "moto_server cannot be started ({e}): pip install 'moto[server]' for an S3-compatible server"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{reason}");
            }
            eprintln!("skipped: {reason}");
            return None;
        }
    };
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

#[test]
fn tenant_prefixes_live_in_an_s3_bucket_under_its_prefix() {
    // SAFETY: set before any other thread of this test binary exists (this is its only test,
    // and the runtime is built below); object_store reads credentials from the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "tenantry-test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "tenantry-test-secret");
    }
    let Some(moto) = start_moto() else {
        return;
    };
    let bucket = format!("tenantry-{}", TenantId::generate().simple());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let made = reqwest::Client::new()
            .put(format!("{}/{bucket}", moto.url))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "creating the bucket: {made:?}");

        let storage = TenantStorage::s3(&S3Config {
            bucket: bucket.clone(),
            prefix: "fleet/".into(),
            endpoint: Some(moto.url.clone()),
            region: "us-east-1".into(),
            allow_http: true,
        })
        .unwrap();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        assert_eq!(
            storage.url_of("eu-west", a),
            format!("s3://{bucket}/fleet/eu-west/tenants/{a}/")
        );
        assert!(!storage.exists("eu-west", a).await.unwrap());
        for _ in 0..2 {
            storage.ensure("eu-west", a, "acme").await.unwrap();
        }
        storage.ensure("eu-west", b, "globex").await.unwrap();
        assert!(storage.exists("eu-west", a).await.unwrap());
        let document = serde_json::json!({ "endpoint": "http://acme.internal" });
        storage
            .put_document("eu-west", a, "infrastructure.json", &document)
            .await
            .unwrap();
        assert_eq!(
            storage
                .document("eu-west", a, "infrastructure.json")
                .await
                .unwrap(),
            Some(document)
        );
        let usage = storage.usage("eu-west", a).await.unwrap();
        assert_eq!(usage.objects, 2);
        assert!(usage.bytes > 0);

        // The objects are really in the bucket, under the configured prefix.
        let listing = reqwest::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix=fleet/eu-west/tenants/{a}/",
                moto.url
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(listing.contains("_tenantry.json"), "{listing}");

        // A residency change copies the prefix; a large object goes as a multipart upload.
        let large = serde_json::json!({ "blob": "0123456789abcdef".repeat(1_500_000) });
        storage
            .put_document("eu-west", a, "large.json", &large)
            .await
            .unwrap();
        assert_eq!(
            storage.copy_prefix("eu-west", "us-east", a).await.unwrap(),
            3
        );
        assert_eq!(
            storage.document("us-east", a, "large.json").await.unwrap(),
            Some(large)
        );
        assert_eq!(storage.remove("us-east", a).await.unwrap(), 3);
        assert_eq!(storage.remove("eu-west", a).await.unwrap(), 3);
        assert_eq!(storage.remove("eu-west", a).await.unwrap(), 0);
        assert!(!storage.exists("eu-west", a).await.unwrap());
        assert!(
            storage.exists("eu-west", b).await.unwrap(),
            "another tenant's prefix is untouched"
        );
    });
}
