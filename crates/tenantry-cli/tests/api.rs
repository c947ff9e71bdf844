//! The REST API end to end: `tenantry serve` started as a process, driven over HTTP only.

mod common;

use common::api::{CheckedApi, Server, token};
use common::make_test_env;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn tenants_through_the_api_only() {
    let env = make_test_env();
    let op_tok = token(&env, "operator", "ops");
    let read_tok = token(&env, "reader", "dashboard");
    let server = Server::start(&env, &[]);
    let api = CheckedApi::new(&server);
    let client = &api.client;

    for (slug, plan, region, isolation) in [
        ("acme", "standard", "eu-west", "shared"),
        ("globex", "premium", "us-east", "database"),
    ] {
        let body = json!({ "slug": slug, "plan": plan, "region": region });
        let (dry_status, planned) = api
            .call(
                "post",
                "/api/v1/tenants",
                "/api/v1/tenants",
                &op_tok,
                Some(json!({ "dry_run": true, "slug": slug, "plan": plan, "region": region })),
            )
            .await;
        assert_eq!(dry_status, StatusCode::OK, "{planned}");
        let res = client
            .post(server.url("/api/v1/tenants"))
            .bearer_auth(&op_tok)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let accepted = api.spec.body("post", "/api/v1/tenants", res).await;
        assert_eq!(accepted["operation_url"], location);
        let op = api.finish(&location, &read_tok).await;
        assert_eq!(op["state"], "succeeded", "{op}");
        assert_eq!(op["steps_done"], op["steps_total"]);
        let t = api
            .get(
                "/api/v1/tenants/{slug}",
                &format!("/api/v1/tenants/{slug}"),
                &read_tok,
            )
            .await;
        assert_eq!(
            (t["state"].as_str(), t["isolation"].as_str()),
            (Some("active"), Some(isolation))
        );
    }

    for (action, state) in [("suspend", "suspended"), ("resume", "active")] {
        let (status, accepted) = api
            .call(
                "post",
                &format!("/api/v1/tenants/{{slug}}/{action}"),
                &format!("/api/v1/tenants/acme/{action}"),
                &op_tok,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        api.finish(accepted["operation_url"].as_str().unwrap(), &read_tok)
            .await;
        let t = api
            .get("/api/v1/tenants/{slug}", "/api/v1/tenants/acme", &read_tok)
            .await;
        assert_eq!(t["state"], state);
    }
    let page = api
        .get("/api/v1/tenants", "/api/v1/tenants?limit=1", &read_tok)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], "1");
    let (status, accepted) = api
        .call(
            "delete",
            "/api/v1/tenants/{slug}",
            "/api/v1/tenants/globex",
            &op_tok,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let op = api
        .finish(accepted["operation_url"].as_str().unwrap(), &read_tok)
        .await;
    assert_eq!(op["state"], "succeeded");
    let history = api
        .get(
            "/api/v1/tenants/{slug}/history",
            "/api/v1/tenants/globex/history",
            &read_tok,
        )
        .await;
    assert_eq!(history.as_array().unwrap().last().unwrap()["to"], "deleted");

    // Resuming an active tenant is a conflict, as a problem document.
    let (status, problem) = api
        .call(
            "post",
            "/api/v1/tenants/{slug}/resume",
            "/api/v1/tenants/acme/resume",
            &op_tok,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _) = api
        .call(
            "get",
            "/api/v1/tenants/{slug}",
            "/api/v1/tenants/nobody",
            &read_tok,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            "post",
            "/api/v1/tenants",
            "/api/v1/tenants",
            &read_tok,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (template, path) in [
        ("/api/v1/regions", "/api/v1/regions"),
        ("/api/v1/shards", "/api/v1/shards"),
        ("/api/v1/events/dead-letters", "/api/v1/events/dead-letters"),
    ] {
        api.get(template, path, &read_tok).await;
    }
    let events = api
        .get("/api/v1/events", "/api/v1/events?tenant=acme", &read_tok)
        .await;
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

    // Metrics are open and count what the catalog holds (no tenant id among the labels).
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"tenantry_tenants{state="active",isolation="shared",region="eu-west"} 1"#,
        r#"tenantry_tenants{state="deleted",isolation="database",region="us-east"} 1"#,
        r#"tenantry_operations{kind="provision",state="succeeded"} 2"#,
        r#"tenantry_operations{kind="delete",state="succeeded"} 1"#,
        r#"tenantry_operations{kind="suspend",state="succeeded"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
    assert!(metrics.contains("tenantry_operation_duration_seconds"));
    assert!(metrics.contains(r#"tenantry_http_requests_total{route="/api/v1/tenants/{slug}""#));
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
        req.send()
    };
    assert_eq!(
        post(None, body.to_string()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some("tty_nonsense"), body.to_string())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(&revoked), body.to_string())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(&read_tok), body.to_string())
            .await
            .unwrap()
            .status(),
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
        let res = post(Some(&op_tok), body.clone()).await.unwrap();
        assert_eq!(res.status(), status, "{}", &body[..body.len().min(80)]);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
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
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
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
