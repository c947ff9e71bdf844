//! `tenantry init DIR --postgres URL` gives a user with one PostgreSQL server a working setup in
//! one command: the catalog and one shard per region on that server.

use assert_cmd::Command;
use serde_json::Value;
use tenantry_testkit::postgres::TestServer;

fn tenantry(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::cargo_bin("tenantry")
        .unwrap()
        .current_dir(dir)
        .env_remove("TENANTRY_CONFIG")
        .env_remove("TENANTRY_MASTER_KEY")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tenantry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_command_sets_up_everything_on_one_server() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let init = tenantry(dir.path(), &["init", ".", "--postgres", &server.url]);
    assert!(
        init["catalog"]
            .as_str()
            .unwrap()
            .ends_with("/tenantry_catalog")
    );
    let shards = tenantry(dir.path(), &["shard", "list"]);
    assert!(
        shards
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["engine"] == "postgres")
    );
    for (slug, plan, region, isolation) in [
        ("acme", "standard", "eu-west", "shared"),
        ("hooli", "business", "eu-west", "schema"),
        ("globex", "premium", "us-east", "database"),
    ] {
        let t = tenantry(
            dir.path(),
            &["tenant", "create", slug, "--plan", plan, "--region", region],
        );
        assert_eq!(
            (t["state"].as_str(), t["isolation"].as_str()),
            (Some("active"), Some(isolation)),
            "{t}"
        );
    }
    // The two regions' shared databases are distinct on the one server.
    let acme = tenantry(dir.path(), &["tenant", "show", "acme"]);
    assert_eq!(acme["space"]["database"], "tenantry_shared_eu_west");
}
