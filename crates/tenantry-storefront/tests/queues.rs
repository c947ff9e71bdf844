//! Per-tenant key prefixes in Redis: two dedicated tenants, each served by its own storefront
//! (as its own compute would be), use a queue of the same name on the real Redis and never see
//! each other's jobs; a storefront serving many tenants keeps them apart the same way.

#[path = "../../tenantry-router/tests/fleet/mod.rs"]
mod fleet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleet::Fleet;
use http_body_util::BodyExt;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tenantry_core::Isolation;
use tenantry_router::{RouterOptions, TenantKey};
use tenantry_storefront::Storefront;
use tower::ServiceExt;

/// The machine's Redis (`REDIS_URL`, or 127.0.0.1:6379); `None` after saying why outside CI.
async fn redis() -> Option<redis::aio::ConnectionManager> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(e) => return tenantry_testkit::missing(&format!("Redis at {url} ({e})")),
    };
    match client.get_connection_manager().await {
        Ok(manager) => Some(manager),
        Err(e) => tenantry_testkit::missing(&format!("Redis at {url} ({e})")),
    }
}

async fn call(routes: &axum::Router, path: &str, tenant: Option<&str>, body: Value) -> Value {
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(tenant) = tenant {
        request = request.header("x-tenant", tenant);
    }
    let response = routes
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

async fn take(routes: &axum::Router, tenant: Option<&str>) -> Value {
    call(routes, "/jobs/emails/take", tenant, Value::Null).await["job"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_dedicated_tenants_with_a_queue_of_the_same_name_never_see_each_others_jobs() {
    let Some(mut redis) = redis().await else {
        return;
    };
    let fleet = Fleet::sqlite().await;
    let a = fleet.tenant("queue-a", Isolation::Database).await;
    let b = fleet.tenant("queue-b", Isolation::Database).await;
    let router = fleet.router(RouterOptions::default());
    // Each dedicated tenant's own storefront, pinned to it whatever a request says.
    let own =
        |id| Storefront::new(router.clone(), Some(redis.clone()), Some(TenantKey::Id(id))).routes();
    let (store_a, store_b) = (own(a.id), own(b.id));

    for n in 0..3 {
        call(
            &store_a,
            "/jobs/emails",
            None,
            json!({ "to": format!("a{n}") }),
        )
        .await;
    }
    call(&store_b, "/jobs/emails", None, json!({ "to": "b0" })).await;
    // A request to B's storefront naming A is still B's.
    call(
        &store_b,
        "/jobs/emails",
        Some(&a.slug),
        json!({ "to": "b1" }),
    )
    .await;

    assert_eq!(take(&store_b, None).await, json!({ "to": "b0" }));
    assert_eq!(take(&store_b, None).await, json!({ "to": "b1" }));
    assert_eq!(
        take(&store_b, None).await,
        Value::Null,
        "B's queue holds none of A's jobs"
    );
    for n in 0..3 {
        assert_eq!(take(&store_a, None).await, json!({ "to": format!("a{n}") }));
    }
    assert_eq!(take(&store_a, None).await, Value::Null);

    // One storefront serving both: the request's tenant picks the queue.
    let shared = Storefront::new(router.clone(), Some(redis.clone()), None).routes();
    call(
        &shared,
        "/jobs/emails",
        Some(&a.slug),
        json!({ "to": "a9" }),
    )
    .await;
    assert_eq!(take(&shared, Some(&b.slug)).await, Value::Null);
    assert_eq!(take(&shared, Some(&a.slug)).await, json!({ "to": "a9" }));

    // Every key the tenants made is under their own prefix, and all are gone now.
    for t in [&a, &b] {
        let keys: Vec<String> = redis.keys(format!("{}*", t.id.key_prefix())).await.unwrap();
        assert!(keys.is_empty(), "{keys:?}");
    }
    router.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_name_that_could_escape_the_prefix_is_refused() {
    let Some(redis) = redis().await else {
        return;
    };
    let fleet = Fleet::sqlite().await;
    let a = fleet.tenant("queue-c", Isolation::Shared).await;
    let router = fleet.router(RouterOptions::default());
    let routes = Storefront::new(router.clone(), Some(redis), None).routes();
    let request = Request::post("/jobs/x:*/take")
        .header("x-tenant", &a.slug)
        .body(Body::empty())
        .unwrap();
    let response = routes.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    router.close().await;
}
