//! Tenant domains: set at creation and changed later, unique across live tenants, released on
//! delete, and resolved from a request's host by the API.

mod common;

use common::server::Server;
use common::{make_test_env, stderr_of};
use serde_json::Value;

#[tokio::test]
async fn domains_are_unique_changeable_released_and_resolved() {
    let env = make_test_env();
    let acme = env.create(
        "acme",
        "standard",
        "eu-west",
        &["--domain", "Acme.example", "--alias", "www.acme.example"],
    );
    assert_eq!(acme["state"], "active");
    let shown = env.json(&["tenant", "domains", "acme"]);
    assert_eq!(shown["primary"], "acme.example", "normalised: {shown}");
    assert_eq!(shown["aliases"], serde_json::json!(["www.acme.example"]));

    // Another tenant cannot have one of them: refused before anything is recorded.
    let out = env
        .command()
        .args([
            "tenant", "create", "globex", "--plan", "standard", "--region", "eu-west",
        ])
        .args(["--domain", "www.acme.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("domain \"www.acme.example\" belongs to tenant acme"),
        "{}",
        stderr_of(&out)
    );
    let listed = env.json(&["tenant", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // A malformed name, or an alias without a primary, is bad input too.
    for args in [
        vec!["--domain", "not a domain"],
        vec!["--alias", "www.globex.example"],
    ] {
        let out = env
            .command()
            .args([
                "tenant", "create", "globex", "--plan", "standard", "--region", "eu-west",
            ])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
    }

    // Changed later; the old names are free for others.
    env.create("globex", "standard", "eu-west", &[]);
    let changed = env.json(&[
        "tenant",
        "domains",
        "acme",
        "--primary",
        "shop.acme.example",
    ]);
    assert_eq!(changed["primary"], "shop.acme.example");
    assert_eq!(changed["aliases"], serde_json::json!([]));
    env.json(&[
        "tenant",
        "domains",
        "globex",
        "--primary",
        "www.acme.example",
    ]);

    // The API resolves a request's host (with its port) to the tenant.
    let server = Server::start(&env, &[]);
    let token = env.json(&["token", "create", "--scope", "reader", "--name", "router"]);
    let token = token["token"].as_str().unwrap();
    let resolve = |host: &str| {
        let url = server.url(&format!("/api/v1/domains/{host}"));
        async move {
            let answer = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, tenant) = resolve("Shop.Acme.example:8443").await;
    assert_eq!(
        (status, &tenant["slug"]),
        (200, &Value::from("acme")),
        "{tenant}"
    );
    let (status, tenant) = resolve("www.acme.example").await;
    assert_eq!(tenant["slug"], "globex", "{status} {tenant}");
    let (status, _) = resolve("acme.example").await;
    assert_eq!(status, 404);
    drop(server);

    // A deleted tenant's domains are released.
    env.tenantry(["tenant", "delete", "globex"]).success();
    env.json(&[
        "tenant",
        "domains",
        "acme",
        "--primary",
        "shop.acme.example",
        "--alias",
        "www.acme.example",
    ]);
}
