//! The REST API end to end: `tenantry serve` started as a process, driven over HTTP only.

mod common;

use common::make_test_env;
use common::server::Server;
use common::spec::SendChecked;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn token(env: &common::Env, scope: &str, name: &str) -> String {
    let v = env.json(&["token", "create", "--scope", scope, "--name", name]);
    v["token"].as_str().unwrap().to_owned()
}

async fn wait_for_operation(
    client: &reqwest::Client,
    server: &Server,
    tok: &str,
    url: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let op: Value = client
            .get(server.url(url))
            .bearer_auth(tok)
            .checked()
            .await
            .body;
        if op["state"] == "succeeded" || op["state"] == "failed" {
            return op;
        }
        assert!(Instant::now() < deadline, "operation never finished: {op}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_through_the_api_only() {
    let env = make_test_env();
    let op_tok = token(&env, "operator", "ops");
    let read_tok = token(&env, "reader", "dashboard");
    let server = Server::start(&env, &[]);
    let client = reqwest::Client::new();

    for (slug, plan, region, isolation) in [
        ("acme", "standard", "eu-west", "shared"),
        ("globex", "premium", "us-east", "database"),
    ] {
        let res = client
            .post(server.url("/api/v1/tenants"))
            .bearer_auth(&op_tok)
            .json(&json!({ "slug": slug, "plan": plan, "region": region }))
            .checked()
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let accepted: Value = res.body.clone();
        assert_eq!(accepted["operation_url"], location);
        let op = wait_for_operation(&client, &server, &read_tok, &location).await;
        assert_eq!(op["state"], "succeeded", "{op}");
        assert_eq!(op["steps_done"], op["steps_total"]);
        let t: Value = client
            .get(server.url(&format!("/api/v1/tenants/{slug}")))
            .bearer_auth(&read_tok)
            .checked()
            .await
            .body;
        assert_eq!(
            (t["state"].as_str(), t["isolation"].as_str()),
            (Some("active"), Some(isolation))
        );
    }

    for (action, state) in [("suspend", "suspended"), ("resume", "active")] {
        let res = client
            .post(server.url(&format!("/api/v1/tenants/acme/{action}")))
            .bearer_auth(&op_tok)
            .checked()
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let accepted: Value = res.body.clone();
        let url = accepted["operation_url"].as_str().unwrap().to_owned();
        wait_for_operation(&client, &server, &read_tok, &url).await;
        let t: Value = client
            .get(server.url("/api/v1/tenants/acme"))
            .bearer_auth(&read_tok)
            .checked()
            .await
            .body;
        assert_eq!(t["state"], state);
    }
    let page: Value = client
        .get(server.url("/api/v1/tenants?limit=1"))
        .bearer_auth(&read_tok)
        .checked()
        .await
        .body;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], "1");
    let res = client
        .delete(server.url("/api/v1/tenants/globex"))
        .bearer_auth(&op_tok)
        .checked()
        .await;
    let accepted: Value = res.body.clone();
    let op = wait_for_operation(
        &client,
        &server,
        &read_tok,
        accepted["operation_url"].as_str().unwrap(),
    )
    .await;
    assert_eq!(op["state"], "succeeded");
    let history: Value = client
        .get(server.url("/api/v1/tenants/globex/history"))
        .bearer_auth(&read_tok)
        .checked()
        .await
        .body;
    assert_eq!(history.as_array().unwrap().last().unwrap()["to"], "deleted");

    // Resuming an active tenant is a conflict, as a problem document.
    let res = client
        .post(server.url("/api/v1/tenants/acme/resume"))
        .bearer_auth(&op_tok)
        .checked()
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let events: Value = client
        .get(server.url("/api/v1/events?tenant=acme"))
        .bearer_auth(&read_tok)
        .checked()
        .await
        .body;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "TenantCreated",
            "TenantProvisioned",
            "TenantActivated",
            "TenantSuspended",
            "TenantResumed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_scopes_and_bad_input() {
    let env = make_test_env();
    let op_tok = token(&env, "operator", "ops");
    let read_tok = token(&env, "reader", "dashboard");
    let revoked = token(&env, "admin", "old");
    env.tenantry(["token", "revoke", "old"]).success();
    let server = Server::start(&env, &[]);
    let client = reqwest::Client::new();
    let body = json!({ "slug": "acme", "plan": "standard", "region": "eu-west" });
    let post = |tok: Option<&str>, body: String| {
        let mut req = client
            .post(server.url("/api/v1/tenants"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = tok {
            req = req.bearer_auth(t);
        }
        req.checked()
    };
    assert_eq!(
        post(None, body.to_string()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some("tty_nonsense"), body.to_string()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(&revoked), body.to_string()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(&read_tok), body.to_string()).await.status(),
        StatusCode::FORBIDDEN
    );

    let cases = [
        ("{not json".to_string(), StatusCode::BAD_REQUEST, None),
        (
            json!({ "slug": "acme", "plan": "gold", "region": "eu-west" }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plan"),
        ),
        (
            json!({ "slug": "Bad_Slug", "plan": "standard", "region": "eu-west" }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("slug"),
        ),
        (
            json!({ "slug": "acme", "plan": "standard", "region": "mars" }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("region"),
        ),
        (
            json!({ "slug": "acme", "plan": "standard", "region": "eu-west", "colour": "red" })
                .to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("colour"),
        ),
        (
            format!("{{\"slug\":\"{}\"}}", "a".repeat(100_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let res = post(Some(&op_tok), body.clone()).await;
        assert_eq!(res.status(), status, "{}", &body[..body.len().min(80)]);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.body.clone();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("https://tenantry.dev/problems/")
        );
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{problem}");
        }
    }
    let tenants: Value = client
        .get(server.url("/api/v1/tenants"))
        .bearer_auth(&read_tok)
        .checked()
        .await
        .body;
    assert!(
        tenants["items"].as_array().unwrap().is_empty(),
        "nothing was created"
    );

    // The same Idempotency-Key twice creates one tenant and answers the same.
    let send = || {
        client
            .post(server.url("/api/v1/tenants"))
            .bearer_auth(&op_tok)
            .header("idempotency-key", "signup-42")
            .json(&body)
            .checked()
    };
    let first: Value = send().await.body;
    let again = send().await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.body, first);
    let all = env.json(&["tenant", "list", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_is_the_committed_one() {
    let env = make_test_env();
    let server = Server::start(&env, &[]);
    let served: Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        served, committed,
        "docs/openapi.json drifted: run `cargo run -q -p tenantry-cli -- openapi > docs/openapi.json`"
    );
    assert!(served["paths"]["/api/v1/tenants"]["post"].is_object());
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_routes_of_the_remote_cli_answer_as_documented() {
    let env = make_test_env();
    env.create("acme", "standard", "eu-west", &[]);
    let admin = token(&env, "admin", "root");
    let server = Server::start(&env, &[]);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(server.url(path)).bearer_auth(&admin);
    let post = |path: &str, body: Value| {
        client
            .post(server.url(path))
            .bearer_auth(&admin)
            .json(&body)
    };

    let ops = get("/api/v1/operations?tenant=acme").checked().await.body;
    let op_id = ops[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        get("/api/v1/operations?open=true").checked().await.body,
        json!([])
    );
    let resumed = post(&format!("/api/v1/operations/{op_id}/resume"), json!({}))
        .checked()
        .await;
    assert_eq!(
        resumed.status(),
        StatusCode::OK,
        "a finished operation is answered as is"
    );
    assert_eq!(
        get("/api/v1/plans")
            .checked()
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let storage = get("/api/v1/tenants/acme/storage").checked().await.body;
    assert_eq!(storage["exists"], true);
    get("/api/v1/pool").checked().await;
    get("/api/v1/events/dead-letters").checked().await;

    let dir = env.path().join("extra");
    let shard = post(
        "/api/v1/shards",
        json!({ "name": "eu-west-9", "region": "eu-west", "engine": "sqlite",
                "directory": dir.to_str().unwrap(), "capacity": 10 }),
    )
    .checked()
    .await;
    assert_eq!(shard.status(), StatusCode::CREATED);
    let again = post(
        "/api/v1/shards",
        json!({ "name": "eu-west-9", "region": "eu-west", "engine": "sqlite",
                "directory": dir.to_str().unwrap(), "capacity": 10 }),
    )
    .checked()
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let drained = post("/api/v1/shards/eu-west-9/drain", json!({}))
        .checked()
        .await;
    assert_eq!(drained.body["state"], "draining");
    let missing = post("/api/v1/shards/nowhere/activate", json!({}))
        .checked()
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let planned = post(
        "/api/v1/migrations",
        json!({ "concurrency": 2, "dry_run": true }),
    )
    .checked()
    .await;
    assert_eq!(planned.status(), StatusCode::OK);
    let bad = post("/api/v1/migrations", json!({ "concurrency": 0 }))
        .checked()
        .await;
    assert_eq!(bad.body["field"], "concurrency");

    let created = post(
        "/api/v1/tokens",
        json!({ "scope": "reader", "name": "dash" }),
    )
    .checked()
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.body["token"].as_str().unwrap().starts_with("tty_"));
    let listed = get("/api/v1/tokens").checked().await.body;
    assert!(listed.to_string().contains("dash") && !listed.to_string().contains("tty_"));
    let reader = created.body["token"].as_str().unwrap().to_owned();
    let refused = client
        .get(server.url("/api/v1/tokens"))
        .bearer_auth(&reader)
        .checked()
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let revoked = client
        .delete(server.url("/api/v1/tokens/dash"))
        .bearer_auth(&admin)
        .checked()
        .await;
    assert!(revoked.body["revoked_at"].is_string());
}

/// The check itself refuses a body that drifts from the document.
#[test]
#[should_panic(expected = "does not match the OpenAPI document")]
fn a_body_that_drifts_from_the_document_fails_the_check() {
    let shard = json!({ "name": "x", "region": "eu-west", "engine": "sqlite", "state": "active",
        "capacity": 1, "used": 0, "room_left": 1, "tenants": 0, "location": null,
        "colour": "red" });
    common::spec::SPEC.check(
        "get",
        "/api/v1/shards",
        200,
        "application/json",
        &json!([shard]),
    );
}
