//! `/metrics`: open without a token, and counting what the catalog holds — tenants by state,
//! isolation and region, operations by kind and state — with no tenant id among the labels.

mod common;

use common::api::Server;
use common::make_test_env;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_tenants_and_operations_by_state() {
    let env = make_test_env();
    for (slug, plan, region) in [
        ("acme", "standard", "eu-west"),
        ("globex", "premium", "us-east"),
    ] {
        env.tenantry(["tenant", "create", slug, "--plan", plan, "--region", region])
            .success();
    }
    env.tenantry(["tenant", "suspend", "acme"]).success();
    let server = Server::start(&env, &[]);
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"tenantry_tenants{state="suspended",isolation="shared",region="eu-west"} 1"#,
        r#"tenantry_tenants{state="active",isolation="database",region="us-east"} 1"#,
        r#"tenantry_operations{kind="provision",state="succeeded"} 2"#,
        r#"tenantry_operations{kind="suspend",state="succeeded"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    let id = env.json(&["tenant", "show", "acme"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.contains(&id), "a tenant id is never a label");
}
