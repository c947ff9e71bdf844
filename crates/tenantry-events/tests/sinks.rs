//! The sinks against real receivers: the NATS server on 127.0.0.1:4222 and a webhook receiver
//! served by the test.

use async_nats::jetstream;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantry_catalog::model::Event;
use tenantry_core::TenantId;
use tenantry_core::events::EventType;
use tenantry_events::EventSink;
use tenantry_events::nats::{NatsConfig, NatsSink};
use tenantry_events::webhook::{WebhookSink, verify};
use uuid::Uuid;

fn make_test_event(seq: i64, event_type: EventType) -> Event {
    Event {
        seq,
        id: Uuid::now_v7(),
        tenant_id: TenantId::generate(),
        event_type,
        payload: serde_json::json!({ "region": "eu-west", "slug": "acme" }),
        created_at: chrono::Utc::now(),
        delivered_at: None,
    }
}

async fn nats_or_skip() -> Option<async_nats::Client> {
    match tokio::time::timeout(
        Duration::from_secs(3),
        async_nats::connect("nats://127.0.0.1:4222"),
    )
    .await
    {
        Ok(Ok(client)) => Some(client),
        _ => tenantry_testkit::missing("NATS at 127.0.0.1:4222"),
    }
}

#[tokio::test]
async fn nats_delivers_once_per_event_id_even_when_published_twice() {
    let Some(client) = nats_or_skip().await else {
        return;
    };
    let unique = Uuid::new_v4().simple().to_string()[..10].to_uppercase();
    let config = NatsConfig {
        stream: format!("TENANTRY_TEST_{unique}"),
        subject_prefix: format!("tenantry_test_{unique}.events"),
        ..NatsConfig::default()
    };
    let sink = NatsSink::connect(config.clone()).await.unwrap();
    let events: Vec<Event> = [
        EventType::TenantCreated,
        EventType::TenantProvisioned,
        EventType::TenantActivated,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, t)| make_test_event(i as i64 + 1, t))
    .collect();
    for e in &events {
        sink.deliver(e).await.unwrap();
        sink.deliver(e).await.unwrap(); // a re-delivery after a crash
    }
    let js = jetstream::new(client);
    let mut stream = js.get_stream(&config.stream).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 3,
        "duplicates are dropped by the broker"
    );
    assert_eq!(
        sink.subject(&events[0]),
        format!("{}.eu-west.TenantCreated", config.subject_prefix)
    );
    js.delete_stream(&config.stream).await.unwrap();
}

#[tokio::test]
async fn webhooks_are_signed_and_server_errors_are_transient() {
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let failures = Arc::new(Mutex::new(2));
    let app = {
        let received = received.clone();
        let failures = failures.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let received = received.clone();
                let failures = failures.clone();
                async move {
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received.lock().unwrap().push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sink = WebhookSink::new("test", &format!("http://{addr}/hook"), b"s3cret");
    let event = make_test_event(1, EventType::TenantCreated);
    for _ in 0..2 {
        let err = sink.deliver(&event).await.unwrap_err();
        assert!(err.transient, "{err}");
    }
    sink.deliver(&event).await.unwrap();
    let got = received.lock().unwrap();
    let (headers, body) = &got[0];
    let sig = headers["tenantry-signature"].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(verify(b"s3cret", sig, body, now, Duration::from_secs(300)));
    assert!(!verify(b"wrong", sig, body, now, Duration::from_secs(300)));
    assert_eq!(
        headers["tenantry-event-id"].to_str().unwrap(),
        event.id.to_string()
    );
}
