//! One behaviour, two backends: every test here runs against the SQLite catalog and the
//! PostgreSQL catalog (a fresh database on the machine's server).

use std::sync::Arc;
use tenantry_catalog::model::*;
use tenantry_catalog::{CatalogError, CatalogStore};
use tenantry_core::config::ShardConfig;
use tenantry_core::events::EventType;
use tenantry_core::placement::{Characteristics, Placement};
use tenantry_core::shard::ShardState;
use tenantry_core::{Compute, Engine, Isolation, TenantId, TenantState};
use tenantry_testkit::postgres::TestDatabase;
use uuid::Uuid;

/// A catalog and what keeps it alive.
struct Backend {
    catalog: Arc<dyn CatalogStore>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    Some(Backend {
        catalog: tenantry_catalog::open(&url).await.unwrap(),
        _dir: Some(dir),
        _db: None,
    })
}

async fn postgres() -> Option<Backend> {
    let db = TestDatabase::create("catalog").await?;
    Some(Backend {
        catalog: tenantry_catalog::open(&db.url).await.unwrap(),
        _dir: None,
        _db: Some(db),
    })
}

fn make_test_shard(name: &str, region: &str) -> ShardConfig {
    ShardConfig {
        name: name.into(),
        region: region.into(),
        engine: Engine::Sqlite,
        url: None,
        directory: Some(format!("/tmp/{name}").into()),
        capacity: 10,
        state: ShardState::Active,
    }
}

fn make_test_tenant(slug: &str, isolation: Isolation) -> NewTenant {
    NewTenant {
        id: TenantId::generate(),
        slug: slug.into(),
        characteristics: Characteristics {
            plan: "standard".into(),
            region: "eu-west".into(),
            ..Characteristics::default()
        },
        placement: Placement {
            isolation,
            compute: Compute::Shared,
            rule: "plan:standard".into(),
            reason: "test".into(),
            overridden: false,
            requested_shard: None,
        },
        shard: "eu-1".into(),
        admin_email: format!("admin@{slug}.example"),
    }
}

fn cause() -> Cause {
    Cause {
        trigger: "test".into(),
        actor: "test".into(),
        details: serde_json::Value::Null,
    }
}

fn provision_op() -> NewOperation {
    NewOperation {
        id: Uuid::now_v7(),
        kind: OperationKind::Provision,
        steps: vec!["validate", "activate"],
        params: serde_json::Value::Null,
    }
}

async fn create(c: &dyn CatalogStore, slug: &str, iso: Isolation) -> (Tenant, Operation) {
    c.create_tenant(make_test_tenant(slug, iso), cause(), provision_op())
        .await
        .unwrap()
}

/// Takes a tenant through to active with its events.
async fn activate(c: &dyn CatalogStore, t: &Tenant) {
    for to in [TenantState::Validating, TenantState::Provisioning] {
        c.transition(t.id, to, cause(), vec![], TenantUpdate::default(), None)
            .await
            .unwrap();
    }
    let events = vec![NewEvent {
        event_type: EventType::TenantActivated,
        payload: serde_json::json!({}),
    }];
    c.transition(
        t.id,
        TenantState::Active,
        cause(),
        events,
        TenantUpdate::default(),
        None,
    )
    .await
    .unwrap();
}

macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite { $(#[tokio::test(flavor = "multi_thread")] async fn $name() { if let Some(b) = super::sqlite().await { super::$name(b.catalog.clone()).await } })+ }
        mod on_postgres { $(#[tokio::test(flavor = "multi_thread")] async fn $name() { if let Some(b) = super::postgres().await { super::$name(b.catalog.clone()).await } })+ }
    };
}

both!(
    creating_a_tenant_records_everything_at_once,
    slugs_are_unique_among_live_tenants,
    transitions_follow_the_lifecycle_and_checkpoints_make_them_exactly_once,
    one_open_operation_per_tenant,
    leases_are_exclusive_until_they_expire,
    concurrent_workers_claim_each_operation_once,
    shards_register_drain_and_stay_drained,
    secrets_round_trip,
    the_warm_pool_never_hands_one_database_out_twice,
    tokens_idempotency_and_sink_cursors,
);

async fn creating_a_tenant_records_everything_at_once(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    assert_eq!(t.state, TenantState::Requested);
    assert_eq!(op.state, OperationState::Pending);
    assert_eq!(op.steps.len(), 2);
    let history = c.history(t.id).await.unwrap();
    assert_eq!(
        (history.len(), history[0].from, history[0].to),
        (1, None, TenantState::Requested)
    );
    let events = c.events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::TenantCreated);
    assert_eq!(c.tenant_by_slug("acme").await.unwrap().id, t.id);
    assert!(matches!(
        c.tenant_by_slug("nope").await,
        Err(CatalogError::TenantNotFound(_))
    ));
}

async fn slugs_are_unique_among_live_tenants(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    let again = c
        .create_tenant(
            make_test_tenant("acme", Isolation::Shared),
            cause(),
            provision_op(),
        )
        .await;
    assert!(matches!(again, Err(CatalogError::DuplicateSlug(_))));
    // Nothing of the refused tenant was written.
    assert_eq!(
        c.tenants(&TenantFilter {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    c.set_operation_state(op.id, OperationState::Failed, None)
        .await
        .unwrap();
    c.transition(
        t.id,
        TenantState::Failed,
        cause(),
        vec![],
        TenantUpdate::default(),
        None,
    )
    .await
    .unwrap();
    c.transition(
        t.id,
        TenantState::Deleting,
        cause(),
        vec![],
        TenantUpdate::default(),
        None,
    )
    .await
    .unwrap();
    c.transition(
        t.id,
        TenantState::Deleted,
        cause(),
        vec![],
        TenantUpdate::default(),
        None,
    )
    .await
    .unwrap();
    let (reborn, _) = create(&*c, "acme", Isolation::Database).await;
    assert_eq!(
        c.tenant_by_slug("acme").await.unwrap().id,
        reborn.id,
        "the live tenant wins"
    );
}

async fn transitions_follow_the_lifecycle_and_checkpoints_make_them_exactly_once(
    c: Arc<dyn CatalogStore>,
) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    let illegal = c
        .transition(
            t.id,
            TenantState::Active,
            cause(),
            vec![],
            TenantUpdate::default(),
            None,
        )
        .await;
    assert!(matches!(illegal, Err(CatalogError::IllegalTransition(_))));
    let cp = Checkpoint {
        operation: op.id,
        step: 0,
    };
    let ev = || {
        vec![NewEvent {
            event_type: EventType::TenantProvisioned,
            payload: serde_json::json!({}),
        }]
    };
    c.transition(
        t.id,
        TenantState::Validating,
        cause(),
        ev(),
        TenantUpdate::default(),
        Some(cp),
    )
    .await
    .unwrap();
    // Run again after a crash: no second audit row, no second event.
    c.transition(
        t.id,
        TenantState::Validating,
        cause(),
        ev(),
        TenantUpdate::default(),
        Some(cp),
    )
    .await
    .unwrap();
    assert_eq!(c.history(t.id).await.unwrap().len(), 2);
    assert_eq!(c.events(Some(t.id), 0, 100).await.unwrap().len(), 2);
    assert_eq!(
        c.operation(op.id).await.unwrap().steps[0].state,
        StepState::Done
    );
    let events = c.events(None, 0, 100).await.unwrap();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

async fn one_open_operation_per_tenant(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Shared).await;
    let second = c
        .create_operation(
            t.id,
            NewOperation {
                id: Uuid::now_v7(),
                kind: OperationKind::Suspend,
                steps: vec!["suspend"],
                params: serde_json::Value::Null,
            },
        )
        .await;
    assert!(
        matches!(second, Err(CatalogError::OperationInProgress { .. })),
        "{second:?}"
    );
}

async fn leases_are_exclusive_until_they_expire(c: Arc<dyn CatalogStore>) {
    let (_, op) = create(&*c, "acme", Isolation::Shared).await;
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::seconds(30);
    let taken = c
        .claim_operation(op.id, "w1", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.state, OperationState::Running);
    assert!(
        c.claim_operation(op.id, "w2", later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.claim_operation(op.id, "w1", later)
            .await
            .unwrap()
            .is_some(),
        "renewal"
    );
    // w1's lease ends in the past: w2 takes over.
    c.claim_operation(op.id, "w1", now - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(
        c.claim_operation(op.id, "w2", later)
            .await
            .unwrap()
            .is_some()
    );
    c.set_operation_state(op.id, OperationState::Succeeded, None)
        .await
        .unwrap();
    assert!(
        c.claim_operation(op.id, "w3", later)
            .await
            .unwrap()
            .is_none(),
        "finished operations are not claimed"
    );
}

async fn concurrent_workers_claim_each_operation_once(c: Arc<dyn CatalogStore>) {
    for i in 0..20 {
        create(&*c, &format!("t{i:02}"), Isolation::Shared).await;
    }
    let until = chrono::Utc::now() + chrono::Duration::seconds(60);
    let workers = (0..8).map(|w| {
        let c = c.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(op) = c
                .claim_next_operation(&format!("w{w}"), until)
                .await
                .unwrap()
            {
                mine.push(op.id);
            }
            mine
        })
    });
    let mut all: Vec<Uuid> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (20, 20));
}

async fn shards_register_drain_and_stay_drained(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    let added = c
        .add_shard(&make_test_shard("eu-2", "eu-west"))
        .await
        .unwrap();
    assert_eq!(added.state, ShardState::Active);
    assert!(matches!(
        c.add_shard(&make_test_shard("eu-2", "eu-west")).await,
        Err(CatalogError::DuplicateShard(_))
    ));
    c.set_shard_state("eu-1", ShardState::Draining)
        .await
        .unwrap();
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    let shards = c.shards().await.unwrap();
    assert_eq!(
        shards.iter().find(|s| s.name == "eu-1").unwrap().state,
        ShardState::Draining
    );
    assert!(matches!(
        c.set_shard_state("nope", ShardState::Active).await,
        Err(CatalogError::ShardNotFound(_))
    ));
    let (t, _) = create(&*c, "dedicated", Isolation::Database).await;
    create(&*c, "pooled", Isolation::Shared).await;
    let eu1 = c
        .shards()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "eu-1")
        .unwrap();
    assert_eq!(eu1.used, 1, "only database tenants count");
    let _ = t;
}

async fn secrets_round_trip(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Database).await;
    c.put_secret(t.id, "database", b"sealed-1").await.unwrap();
    c.put_secret(t.id, "database", b"sealed-2").await.unwrap();
    assert_eq!(
        c.secret(t.id, "database").await.unwrap().unwrap(),
        b"sealed-2"
    );
    assert_eq!(c.delete_secrets(t.id).await.unwrap(), 1);
    assert!(c.secret(t.id, "database").await.unwrap().is_none());
}

async fn the_warm_pool_never_hands_one_database_out_twice(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    for i in 0..5 {
        c.pool_add(NewPoolEntry {
            shard: "eu-1".into(),
            database: format!("pool_{i}"),
            secret: vec![1],
            schema_version: Some(4),
        })
        .await
        .unwrap();
    }
    let claims = (0..10).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.pool_claim("eu-1", TenantId::generate()).await.unwrap() })
    });
    let got: Vec<PoolEntry> = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), 5);
    let mut dbs: Vec<&str> = got.iter().map(|e| e.database.as_str()).collect();
    dbs.sort();
    dbs.dedup();
    assert_eq!(dbs.len(), 5, "no database handed out twice");
    let owner = got[0].claimed_by.unwrap();
    assert_eq!(
        c.pool_claim("eu-1", owner).await.unwrap().unwrap().id,
        got[0].id,
        "idempotent"
    );
    let status = c.pool_status().await.unwrap();
    assert_eq!((status[0].available, status[0].claimed), (0, 5));
    c.pool_remove(got[0].id).await.unwrap();
    assert_eq!(c.pool_status().await.unwrap()[0].claimed, 4);
}

async fn tokens_idempotency_and_sink_cursors(c: Arc<dyn CatalogStore>) {
    let t = c.create_token("ci", "operator", "hash-1").await.unwrap();
    assert!(matches!(
        c.create_token("ci", "reader", "hash-2").await,
        Err(CatalogError::DuplicateToken(_))
    ));
    assert_eq!(c.token_by_hash("hash-1").await.unwrap().unwrap().id, t.id);
    c.revoke_token("ci").await.unwrap();
    assert!(c.token_by_hash("hash-1").await.unwrap().is_none());
    assert_eq!(c.tokens().await.unwrap().len(), 1);

    let first = IdempotentResponse {
        key: "k".into(),
        request_hash: "h".into(),
        status: 202,
        body: serde_json::json!({"n": 1}),
    };
    let second = IdempotentResponse {
        body: serde_json::json!({"n": 2}),
        ..first.clone()
    };
    assert_eq!(
        c.save_idempotent_response(first.clone()).await.unwrap(),
        first
    );
    assert_eq!(
        c.save_idempotent_response(second).await.unwrap(),
        first,
        "the first answer stays"
    );

    assert_eq!(c.sink_cursor("nats").await.unwrap(), 0);
    c.set_sink_cursor("nats", 5).await.unwrap();
    c.set_sink_cursor("nats", 3).await.unwrap();
    assert_eq!(
        c.sink_cursor("nats").await.unwrap(),
        5,
        "cursors never go back"
    );
    let (tenant, _) = create(&*c, "acme", Isolation::Shared).await;
    activate(&*c, &tenant).await;
    let seq = c.events(Some(tenant.id), 0, 10).await.unwrap()[0].seq;
    c.add_dead_letter(DeadLetter {
        sink: "webhook:x".into(),
        seq,
        error: "410 Gone".into(),
        attempts: 1,
        at: chrono::Utc::now(),
    })
    .await
    .unwrap();
    assert_eq!(c.dead_letters().await.unwrap().len(), 1);
}
