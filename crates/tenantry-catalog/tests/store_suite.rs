//! One behaviour, two backends: every test here runs against the SQLite catalog (a file in a
//! temporary directory) and the PostgreSQL catalog (a fresh database on the machine's server),
//! each test with a catalog of its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tenantry_catalog::model::*;
use tenantry_catalog::{CatalogError, CatalogStore};
use tenantry_core::config::ShardConfig;
use tenantry_core::domain::{Domain, TenantDomains};
use tenantry_core::events::EventType;
use tenantry_core::placement::{Characteristics, Placement};
use tenantry_core::shard::ShardState;
use tenantry_core::{Compute, Engine, Isolation, TenantId, TenantState};
use tenantry_testkit::postgres::TestDatabase;
use uuid::Uuid;

/// A catalog, its URL, and what keeps it alive.
struct Backend {
    catalog: Arc<dyn CatalogStore>,
    url: String,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    Some(Backend {
        catalog: tenantry_catalog::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
        _db: None,
    })
}

async fn postgres() -> Option<Backend> {
    let db = TestDatabase::create("catalog").await?;
    Some(Backend {
        catalog: tenantry_catalog::open(&db.url).await.unwrap(),
        url: db.url.clone(),
        _dir: None,
        _db: Some(db),
    })
}

/// Runs each listed `async fn(Arc<dyn CatalogStore>)` once per backend.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(b) = super::sqlite().await { super::$name(b.catalog.clone()).await }
            })+
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if let Some(b) = super::postgres().await { super::$name(b.catalog.clone()).await }
            })+
        }
    };
}

both!(
    creating_a_tenant_records_everything_at_once,
    slugs_are_unique_among_live_tenants,
    transitions_follow_the_lifecycle_and_checkpoints_make_them_exactly_once,
    racing_transitions_of_one_tenant_happen_once,
    history_is_oldest_first,
    events_are_in_lifecycle_order_per_tenant,
    the_outbox_never_skips_an_event_under_concurrent_writes,
    one_open_operation_per_tenant,
    step_marks_record_attempts_and_times,
    leases_are_exclusive_until_they_expire,
    concurrent_workers_claim_each_operation_once,
    claim_next_takes_over_expired_leases_only,
    shards_register_drain_and_stay_drained,
    usage_counts_only_live_database_tenants,
    secrets_round_trip,
    the_warm_pool_never_hands_one_database_out_twice,
    pool_claims_are_idempotent_even_when_they_race,
    pool_entries_and_status,
    tokens_idempotency_and_sink_cursors,
    counts_group_tenants_operations_and_events,
    infrastructure_records_and_their_transitions,
    domains_name_one_live_tenant_each,
    tenant_stats_keep_space_and_query_figures_apart,
    a_relocation_moves_the_tenant_once_with_a_new_epoch,
);

// --- builders ---

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
        domains: TenantDomains::default(),
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

fn suspend_op() -> NewOperation {
    NewOperation {
        id: Uuid::now_v7(),
        kind: OperationKind::Suspend,
        steps: vec!["suspend"],
        params: serde_json::Value::Null,
    }
}

fn event(event_type: EventType) -> NewEvent {
    NewEvent {
        event_type,
        payload: serde_json::json!({}),
    }
}

async fn create(c: &dyn CatalogStore, slug: &str, iso: Isolation) -> (Tenant, Operation) {
    c.create_tenant(make_test_tenant(slug, iso), cause(), provision_op())
        .await
        .unwrap()
}

/// Moves a tenant through `states`, one transition (with `events`' event, if any) each.
async fn walk(c: &dyn CatalogStore, t: TenantId, states: &[(TenantState, Option<EventType>)]) {
    for (to, ev) in states {
        c.transition(
            t,
            *to,
            cause(),
            ev.iter().copied().map(event).collect(),
            TenantUpdate::default(),
            None,
        )
        .await
        .unwrap();
    }
}

/// Takes a tenant through to active, announcing it.
async fn activate(c: &dyn CatalogStore, t: &Tenant) {
    walk(
        c,
        t.id,
        &[
            (TenantState::Validating, None),
            (TenantState::Provisioning, None),
            (TenantState::Active, Some(EventType::TenantActivated)),
        ],
    )
    .await;
}

/// Ends a tenant's provisioning as failed and deletes it.
async fn fail_and_delete(c: &dyn CatalogStore, t: &Tenant, op: &Operation) {
    c.set_operation_state(op.id, OperationState::Failed, None)
        .await
        .unwrap();
    walk(
        c,
        t.id,
        &[
            (TenantState::Failed, Some(EventType::TenantFailed)),
            (TenantState::Deleting, None),
            (TenantState::Deleted, Some(EventType::TenantDeleted)),
        ],
    )
    .await;
}

fn all_tenants() -> TenantFilter {
    TenantFilter {
        include_deleted: true,
        ..Default::default()
    }
}

// --- tenants, transitions, events ---

async fn creating_a_tenant_records_everything_at_once(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    assert_eq!(t.state, TenantState::Requested);
    assert_eq!((op.tenant_id, op.state), (t.id, OperationState::Pending));
    assert_eq!(
        op.steps
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect::<Vec<_>>(),
        [
            ("validate", StepState::Pending),
            ("activate", StepState::Pending)
        ]
    );
    let history = c.history(t.id).await.unwrap();
    assert_eq!(
        (history.len(), history[0].from, history[0].to),
        (1, None, TenantState::Requested)
    );
    let events = c.events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::TenantCreated);
    assert_eq!(c.operation(op.id).await.unwrap(), op);
    assert_eq!(c.tenant_by_slug("acme").await.unwrap().id, t.id);
    assert!(matches!(
        c.tenant_by_slug("nope").await,
        Err(CatalogError::TenantNotFound(_))
    ));

    // The operation cannot be written (its id is taken): nothing of the tenant is either.
    let mut clash = provision_op();
    clash.id = op.id;
    let refused = c
        .create_tenant(make_test_tenant("other", Isolation::Shared), cause(), clash)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(!matches!(refused, Err(CatalogError::DuplicateSlug(_))));
    assert_eq!(c.tenants(&all_tenants()).await.unwrap().len(), 1);
    assert_eq!(c.events(None, 0, 100).await.unwrap().len(), 1);
    assert!(matches!(
        c.tenant_by_slug("other").await,
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
    assert!(matches!(again, Err(CatalogError::DuplicateSlug(ref s)) if s == "acme"));
    // Nothing of the refused tenant was written.
    assert_eq!(c.tenants(&all_tenants()).await.unwrap().len(), 1);
    assert_eq!(c.events(None, 0, 100).await.unwrap().len(), 1);

    fail_and_delete(&*c, &t, &op).await;
    assert_eq!(
        c.tenant_by_slug("acme").await.unwrap().state,
        TenantState::Deleted,
        "a deleted tenant is still found by its slug"
    );
    let (reborn, _) = create(&*c, "acme", Isolation::Database).await;
    assert_eq!(
        c.tenant_by_slug("acme").await.unwrap().id,
        reborn.id,
        "the live one wins"
    );
    assert_eq!(c.tenant(t.id).await.unwrap().state, TenantState::Deleted);
    assert_eq!(c.tenants(&TenantFilter::default()).await.unwrap().len(), 1);
    assert_eq!(c.tenants(&all_tenants()).await.unwrap().len(), 2);
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
            vec![event(EventType::TenantActivated)],
            TenantUpdate::default(),
            None,
        )
        .await;
    assert!(matches!(illegal, Err(CatalogError::IllegalTransition(_))));
    assert_eq!(c.tenant(t.id).await.unwrap().state, TenantState::Requested);
    assert_eq!(c.history(t.id).await.unwrap().len(), 1, "nothing written");
    assert_eq!(c.events(Some(t.id), 0, 100).await.unwrap().len(), 1);

    let cp = Checkpoint {
        operation: op.id,
        step: 0,
    };
    let update = || TenantUpdate {
        schema_version: Some(Some(3)),
        ..TenantUpdate::default()
    };
    let moved = c
        .transition(
            t.id,
            TenantState::Validating,
            cause(),
            vec![event(EventType::TenantProvisioned)],
            update(),
            Some(cp),
        )
        .await
        .unwrap();
    assert_eq!(
        (moved.state, moved.schema_version),
        (TenantState::Validating, Some(3))
    );
    // Run again after a crash: no second audit row, no second event.
    let again = c
        .transition(
            t.id,
            TenantState::Validating,
            cause(),
            vec![event(EventType::TenantProvisioned)],
            update(),
            Some(cp),
        )
        .await
        .unwrap();
    assert_eq!(again.state, TenantState::Validating);
    assert_eq!(c.history(t.id).await.unwrap().len(), 2);
    assert_eq!(c.events(Some(t.id), 0, 100).await.unwrap().len(), 2);
    assert_eq!(
        c.operation(op.id).await.unwrap().steps[0].state,
        StepState::Done
    );
    // Without its checkpoint, the same change is an illegal one.
    let repeated = c
        .transition(
            t.id,
            TenantState::Validating,
            cause(),
            vec![],
            TenantUpdate::default(),
            None,
        )
        .await;
    assert!(matches!(repeated, Err(CatalogError::IllegalTransition(_))));
}

async fn racing_transitions_of_one_tenant_happen_once(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Shared).await;
    let racers = (0..8).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            c.transition(
                t.id,
                TenantState::Validating,
                cause(),
                vec![event(EventType::TenantProvisioned)],
                TenantUpdate::default(),
                None,
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, CatalogError::IllegalTransition(_))),
        "{results:?}"
    );
    assert_eq!(c.history(t.id).await.unwrap().len(), 2);
    assert_eq!(c.events(Some(t.id), 0, 100).await.unwrap().len(), 2);
}

async fn history_is_oldest_first(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Shared).await;
    activate(&*c, &t).await;
    walk(
        &*c,
        t.id,
        &[(TenantState::Suspended, None), (TenantState::Active, None)],
    )
    .await;
    let history = c.history(t.id).await.unwrap();
    let steps: Vec<_> = history.iter().map(|h| (h.from, h.to)).collect();
    use TenantState::*;
    assert_eq!(
        steps,
        [
            (None, Requested),
            (Some(Requested), Validating),
            (Some(Validating), Provisioning),
            (Some(Provisioning), Active),
            (Some(Active), Suspended),
            (Some(Suspended), Active),
        ]
    );
    assert!(
        history
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
    assert!(
        history
            .iter()
            .all(|h| h.tenant_id == t.id && h.actor == "test")
    );
}

async fn events_are_in_lifecycle_order_per_tenant(c: Arc<dyn CatalogStore>) {
    let (a, a_op) = create(&*c, "alpha", Isolation::Shared).await;
    let (b, _) = create(&*c, "bravo", Isolation::Shared).await;
    // Interleave the two tenants' changes.
    walk(&*c, a.id, &[(TenantState::Validating, None)]).await;
    activate(&*c, &b).await;
    fail_and_delete(&*c, &a, &a_op).await;

    let types = |events: &[Event]| events.iter().map(|e| e.event_type).collect::<Vec<_>>();
    let of_a = c.events(Some(a.id), 0, 100).await.unwrap();
    assert_eq!(
        types(&of_a),
        [
            EventType::TenantCreated,
            EventType::TenantFailed,
            EventType::TenantDeleted
        ]
    );
    let of_b = c.events(Some(b.id), 0, 100).await.unwrap();
    assert_eq!(
        types(&of_b),
        [EventType::TenantCreated, EventType::TenantActivated]
    );
    for events in [&of_a, &of_b] {
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    }
    // All of them, in pages after a cursor, each once.
    let all = c.events(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = c.events(None, all[1].seq, 2).await.unwrap();
    assert_eq!(page, all[2..4]);
    let ids: HashSet<Uuid> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5, "stable, distinct ids");
    assert!(all.iter().all(|e| e.delivered_at.is_none()));
}

/// A relay reads `seq > cursor` while tenants are being created: every event is seen, none is
/// stepped over because its transaction committed after one with a higher number.
async fn the_outbox_never_skips_an_event_under_concurrent_writes(c: Arc<dyn CatalogStore>) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    create(&*c, &format!("w{w}-{i}"), Isolation::Shared).await;
                }
            })
        })
        .collect();
    let (mut cursor, mut seen) = (0, Vec::new());
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        let batch = c.events(None, cursor, 1000).await.unwrap();
        for e in &batch {
            seen.push(e.id);
            cursor = e.seq;
        }
        if finished && batch.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), 40);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 40);
}

// --- operations ---

async fn step_marks_record_attempts_and_times(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    let states = |op: &Operation| -> Vec<(StepState, i64)> {
        op.steps.iter().map(|s| (s.state, s.attempts)).collect()
    };
    // Each start reads the tenant with it.
    assert_eq!(c.start_step(op.id, 0, None, t.id).await.unwrap(), t);
    c.set_step_state(op.id, 0, StepState::Running, None)
        .await
        .unwrap();
    let read = c.operation(op.id).await.unwrap();
    assert_eq!(
        states(&read),
        [(StepState::Running, 2), (StepState::Pending, 0)]
    );
    assert!(read.steps[0].started_at.is_some() && read.steps[0].finished_at.is_none());

    // The next step's start writes the previous one's `done` with it.
    assert_eq!(
        c.start_step(op.id, 1, Some(0), t.id).await.unwrap().id,
        t.id
    );
    let read = c.operation(op.id).await.unwrap();
    assert_eq!(
        states(&read),
        [(StepState::Done, 2), (StepState::Running, 1)]
    );
    assert_eq!(read.steps[0].finished_at, read.steps[1].started_at);
    assert!(read.steps[0].started_at <= read.steps[0].finished_at);

    c.set_step_state(op.id, 1, StepState::Failed, Some("it broke".into()))
        .await
        .unwrap();
    let read = c.operation(op.id).await.unwrap();
    assert_eq!(read.steps[1].state, StepState::Failed);
    assert_eq!(read.steps[1].last_error.as_deref(), Some("it broke"));
    assert!(read.steps[1].finished_at.is_some());
}

async fn one_open_operation_per_tenant(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    let second = c.create_operation(t.id, suspend_op()).await;
    match second {
        Err(CatalogError::OperationInProgress { slug, operation }) => {
            assert_eq!((slug, operation), ("acme".to_owned(), op.id.to_string()));
        }
        other => panic!("expected OperationInProgress, got {other:?}"),
    }
    assert_eq!(c.operations(Some(t.id), 10).await.unwrap().len(), 1);
    c.set_operation_state(op.id, OperationState::Succeeded, None)
        .await
        .unwrap();
    let next = c.create_operation(t.id, suspend_op()).await.unwrap();
    assert_eq!(
        (next.kind, next.state, next.steps.len()),
        (OperationKind::Suspend, OperationState::Pending, 1)
    );
    let ops = c.operations(Some(t.id), 10).await.unwrap();
    assert_eq!(
        ops.iter().map(|o| o.id).collect::<Vec<_>>(),
        [next.id, op.id],
        "most recent first"
    );
    assert!(matches!(
        c.create_operation(TenantId::generate(), suspend_op()).await,
        Err(CatalogError::TenantNotFound(_))
    ));
}

async fn leases_are_exclusive_until_they_expire(c: Arc<dyn CatalogStore>) {
    let (_, op) = create(&*c, "acme", Isolation::Shared).await;
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::seconds(30);
    assert_eq!(c.claimable_operations(now, 10).await.unwrap(), [op.id]);
    let taken = c
        .claim_operation(op.id, "w1", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.state, taken.lease_owner.as_deref()),
        (OperationState::Running, Some("w1"))
    );
    assert!(c.claimable_operations(now, 10).await.unwrap().is_empty());
    assert!(
        c.claim_operation(op.id, "w2", later)
            .await
            .unwrap()
            .is_none()
    );
    let renewed = later + chrono::Duration::seconds(30);
    let taken = c
        .claim_operation(op.id, "w1", renewed)
        .await
        .unwrap()
        .expect("the owner renews its lease");
    assert_eq!(
        taken.lease_expires_at.map(|t| t.timestamp()),
        Some(renewed.timestamp())
    );
    // w1's lease ends in the past: w2 takes over.
    c.claim_operation(op.id, "w1", now - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(c.claimable_operations(now, 10).await.unwrap(), [op.id]);
    let taken = c
        .claim_operation(op.id, "w2", later)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(taken.lease_owner.as_deref(), Some("w2"));
    c.set_operation_state(op.id, OperationState::Succeeded, None)
        .await
        .unwrap();
    let done = c.operation(op.id).await.unwrap();
    assert!(done.lease_owner.is_none() && done.finished_at.is_some());
    assert!(
        c.claim_operation(op.id, "w3", later)
            .await
            .unwrap()
            .is_none(),
        "finished operations are not claimed"
    );
    assert!(c.claimable_operations(now, 10).await.unwrap().is_empty());
}

async fn concurrent_workers_claim_each_operation_once(c: Arc<dyn CatalogStore>) {
    for i in 0..20 {
        create(&*c, &format!("t{i:02}"), Isolation::Shared).await;
    }
    let until = chrono::Utc::now() + chrono::Duration::seconds(60);
    let workers = (0..8).map(|w| {
        let c = c.clone();
        tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut mine = Vec::new();
            while let Some(op) = c.claim_next_operation(&owner, until).await.unwrap() {
                assert_eq!(op.lease_owner.as_deref(), Some(owner.as_str()));
                assert_eq!(op.state, OperationState::Running);
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
    assert!(
        c.claim_next_operation("late", until)
            .await
            .unwrap()
            .is_none()
    );
}

async fn claim_next_takes_over_expired_leases_only(c: Arc<dyn CatalogStore>) {
    let (_, first) = create(&*c, "first", Isolation::Shared).await;
    let (_, second) = create(&*c, "second", Isolation::Shared).await;
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::seconds(60);
    // The oldest first.
    let a = c.claim_next_operation("w1", later).await.unwrap().unwrap();
    assert_eq!(a.id, first.id);
    // A lease that already ended (the worker died).
    let b = c
        .claim_next_operation("w2", now - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.id, second.id);
    let taken = c.claim_next_operation("w3", later).await.unwrap().unwrap();
    assert_eq!(
        (taken.id, taken.lease_owner.as_deref(), taken.state),
        (second.id, Some("w3"), OperationState::Running)
    );
    assert!(c.claim_next_operation("w4", later).await.unwrap().is_none());
    // A rolling-back operation is still open work.
    c.set_operation_state(first.id, OperationState::RollingBack, Some("boom".into()))
        .await
        .unwrap();
    c.claim_operation(first.id, "w1", now - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    let resumed = c.claim_next_operation("w5", later).await.unwrap().unwrap();
    assert_eq!(
        (resumed.id, resumed.state, resumed.error.as_deref()),
        (first.id, OperationState::RollingBack, Some("boom"))
    );
}

// --- shards ---

async fn shards_register_drain_and_stay_drained(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    let added = c
        .add_shard(&make_test_shard("eu-2", "eu-west"))
        .await
        .unwrap();
    assert_eq!(
        (added.name.as_str(), added.state, added.used),
        ("eu-2", ShardState::Active, 0)
    );
    for taken in ["eu-1", "eu-2"] {
        match c.add_shard(&make_test_shard(taken, "eu-west")).await {
            Err(e @ CatalogError::DuplicateShard(_)) => {
                assert!(e.to_string().contains(taken), "{e}");
            }
            other => panic!("expected DuplicateShard, got {other:?}"),
        }
    }
    let drained = c
        .set_shard_state("eu-1", ShardState::Draining)
        .await
        .unwrap();
    assert_eq!(drained.state, ShardState::Draining);
    assert!(matches!(
        c.set_shard_state("nope", ShardState::Active).await,
        Err(CatalogError::ShardNotFound(_))
    ));

    // A restart: the configuration still says active (and has a new capacity and directory).
    let mut eu1 = make_test_shard("eu-1", "eu-west");
    eu1.capacity = 50;
    eu1.directory = Some("/srv/eu-1".into());
    c.sync_shards(&[eu1.clone(), make_test_shard("us-1", "us-east")])
        .await
        .unwrap();
    let shards = c.shards().await.unwrap();
    let named = |n: &str| shards.iter().find(|s| s.name == n).cloned().unwrap();
    assert_eq!(
        (named("eu-1").state, named("eu-1").capacity),
        (ShardState::Draining, 50),
        "drained at run time stays drained; the rest follows the configuration"
    );
    assert_eq!(named("eu-1").directory.as_deref(), Some("/srv/eu-1"));
    assert_eq!(
        named("eu-2").state,
        ShardState::Active,
        "run-time shards are kept"
    );
    assert_eq!(named("us-1").state, ShardState::Active);
    assert_eq!(
        shards.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["eu-1", "eu-2", "us-1"],
        "by region, then name"
    );

    // The configuration drains a shard; reactivating is then a run-time decision.
    let mut us1 = make_test_shard("us-1", "us-east");
    us1.state = ShardState::Draining;
    c.sync_shards(&[eu1, us1]).await.unwrap();
    let usage = c.shard_usage().await.unwrap();
    assert_eq!(
        usage.iter().find(|s| s.name == "us-1").unwrap().state,
        ShardState::Draining
    );
    let active = c.set_shard_state("eu-1", ShardState::Active).await.unwrap();
    assert_eq!(active.state, ShardState::Active);
}

async fn usage_counts_only_live_database_tenants(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    create(&*c, "dedicated", Isolation::Database).await;
    create(&*c, "pooled", Isolation::Shared).await;
    create(&*c, "schema", Isolation::Schema).await;
    let (gone, op) = create(&*c, "gone", Isolation::Database).await;
    fail_and_delete(&*c, &gone, &op).await;
    let eu1 = c.shards().await.unwrap().pop().unwrap();
    assert_eq!(eu1.used, 1, "only live database tenants count");
    let usage = c.shard_usage().await.unwrap();
    assert_eq!((usage[0].used, usage[0].capacity), (1, 10));
}

// --- secrets and the warm pool ---

async fn secrets_round_trip(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Database).await;
    let (other, _) = create(&*c, "other", Isolation::Database).await;
    assert!(c.secret(t.id, "database").await.unwrap().is_none());
    c.put_secret(t.id, "database", b"sealed-1").await.unwrap();
    c.put_secret(t.id, "database", b"sealed-2").await.unwrap();
    c.put_secret(t.id, "admin", &[0, 255, 7]).await.unwrap();
    c.put_secret(other.id, "database", b"theirs").await.unwrap();
    assert_eq!(
        c.secret(t.id, "database").await.unwrap().unwrap(),
        b"sealed-2"
    );
    assert_eq!(c.secret(t.id, "admin").await.unwrap().unwrap(), [0, 255, 7]);
    // One secret goes alone, the tenant's others and other tenants' stay.
    c.put_secret(t.id, "licence", b"signed").await.unwrap();
    assert!(c.delete_secret(t.id, "licence").await.unwrap());
    assert!(!c.delete_secret(t.id, "licence").await.unwrap());
    assert!(c.secret(t.id, "licence").await.unwrap().is_none());
    assert!(c.secret(t.id, "admin").await.unwrap().is_some());
    assert_eq!(c.delete_secrets(t.id).await.unwrap(), 2);
    assert!(c.secret(t.id, "database").await.unwrap().is_none());
    assert_eq!(c.delete_secrets(t.id).await.unwrap(), 0);
    assert_eq!(
        c.secret(other.id, "database").await.unwrap().unwrap(),
        b"theirs",
        "another tenant's secrets stay"
    );
}

async fn fill_pool(c: &dyn CatalogStore, shard: &str, n: usize) -> Vec<PoolEntry> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            c.pool_add(NewPoolEntry {
                shard: shard.into(),
                database: format!("pool_{shard}_{i}"),
                secret: vec![1, 2, i as u8],
                schema_version: Some(4),
            })
            .await
            .unwrap(),
        );
    }
    out
}

async fn the_warm_pool_never_hands_one_database_out_twice(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[make_test_shard("eu-1", "eu-west")])
        .await
        .unwrap();
    fill_pool(&*c, "eu-1", 5).await;
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
    let ids: HashSet<Uuid> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5, "no database handed out twice");
    assert!(
        got.iter()
            .all(|e| e.claimed_by.is_some() && e.claimed_at.is_some())
    );
    let owners: HashSet<TenantId> = got.iter().filter_map(|e| e.claimed_by).collect();
    assert_eq!(owners.len(), 5);
    assert!(
        c.pool_claim("eu-1", TenantId::generate())
            .await
            .unwrap()
            .is_none(),
        "the pool is empty"
    );
}

async fn pool_claims_are_idempotent_even_when_they_race(c: Arc<dyn CatalogStore>) {
    c.sync_shards(&[
        make_test_shard("eu-1", "eu-west"),
        make_test_shard("eu-2", "eu-west"),
    ])
    .await
    .unwrap();
    let added = fill_pool(&*c, "eu-1", 5).await;
    fill_pool(&*c, "eu-2", 1).await;
    let tenant = TenantId::generate();
    let claims = (0..6).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.pool_claim("eu-1", tenant).await.unwrap() })
    });
    let got: Vec<Option<PoolEntry>> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ids: HashSet<Option<Uuid>> = got.iter().map(|e| e.as_ref().map(|e| e.id)).collect();
    assert_eq!(ids.len(), 1, "every claim got the same entry: {ids:?}");
    let entry = got[0].clone().unwrap();
    assert_eq!(entry.id, added[0].id, "the oldest entry is taken first");
    assert_eq!(
        (entry.claimed_by, entry.secret.as_slice()),
        (Some(tenant), &[1u8, 2, 0][..])
    );
    // Again later: the same one; on another shard the tenant gets another one.
    assert_eq!(c.pool_claim("eu-1", tenant).await.unwrap().unwrap(), entry);
    let elsewhere = c.pool_claim("eu-2", tenant).await.unwrap().unwrap();
    assert_eq!(elsewhere.shard, "eu-2");
    let status = c.pool_status().await.unwrap();
    assert_eq!(
        status,
        [
            PoolCount {
                shard: "eu-1".into(),
                available: 4,
                claimed: 1
            },
            PoolCount {
                shard: "eu-2".into(),
                available: 0,
                claimed: 1
            },
        ]
    );
}

async fn pool_entries_and_status(c: Arc<dyn CatalogStore>) {
    assert!(c.pool_status().await.unwrap().is_empty());
    assert!(c.pool_entries(None).await.unwrap().is_empty());
    c.sync_shards(&[
        make_test_shard("eu-1", "eu-west"),
        make_test_shard("eu-2", "eu-west"),
        make_test_shard("eu-3", "eu-west"),
    ])
    .await
    .unwrap();
    assert!(matches!(
        c.pool_add(NewPoolEntry {
            shard: "nope".into(),
            database: "pool_x".into(),
            secret: vec![],
            schema_version: None,
        })
        .await,
        Err(CatalogError::ShardNotFound(ref s)) if s == "nope"
    ));
    let eu1 = fill_pool(&*c, "eu-1", 3).await;
    let eu2 = fill_pool(&*c, "eu-2", 2).await;
    assert!(
        eu1.iter()
            .all(|e| e.claimed_by.is_none() && e.claimed_at.is_none())
    );
    assert_eq!(eu1[0].schema_version, Some(4));

    let (owner, _) = create(&*c, "pooled", Isolation::Database).await;
    let tenant = owner.id;
    let claimed = c.pool_claim("eu-1", tenant).await.unwrap().unwrap();
    let listed = c.pool_entries(Some("eu-1")).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id).collect::<Vec<_>>(),
        eu1.iter().map(|e| e.id).collect::<Vec<_>>(),
        "oldest first"
    );
    assert_eq!(listed[0], claimed);
    assert_eq!(c.pool_entries(Some("eu-2")).await.unwrap(), eu2);
    assert_eq!(c.pool_entries(None).await.unwrap().len(), 5);
    assert!(c.pool_entries(Some("eu-3")).await.unwrap().is_empty());

    let counts = |status: Vec<PoolCount>| {
        status
            .into_iter()
            .map(|p| (p.shard, p.available, p.claimed))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(c.pool_status().await.unwrap()),
        [("eu-1".into(), 2, 1), ("eu-2".into(), 2, 0)],
        "one row per shard that has entries"
    );
    // The claimed database became the tenant's, recorded at once; a free one is discarded.
    let space = tenantry_core::space::Space {
        kind: Isolation::Database,
        shard: "eu-1".into(),
        path: None,
        database: Some(format!("tenant_{}", tenant.simple())),
        schema: None,
    };
    let adoption = |entry| PoolAdoption {
        entry,
        tenant,
        space: space.clone(),
        schema_version: claimed.schema_version,
        secret_name: "database".into(),
        sealed: b"sealed".to_vec(),
    };
    // Only the claiming tenant's adoption removes an entry.
    c.pool_adopted(adoption(eu2[0].id)).await.unwrap();
    assert_eq!(c.pool_entries(Some("eu-2")).await.unwrap(), eu2);
    c.pool_adopted(adoption(claimed.id)).await.unwrap();
    let adopted = c.tenant(tenant).await.unwrap();
    assert_eq!(adopted.space.as_ref(), Some(&space));
    assert_eq!(adopted.schema_version, Some(4));
    assert_eq!(
        c.secret(tenant, "database").await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    c.pool_remove(eu2[0].id).await.unwrap();
    c.pool_remove(Uuid::now_v7()).await.unwrap();
    assert_eq!(
        counts(c.pool_status().await.unwrap()),
        [("eu-1".into(), 2, 0), ("eu-2".into(), 1, 0)]
    );
    // Once removed, a new claim takes a fresh entry.
    let next = c.pool_claim("eu-1", tenant).await.unwrap().unwrap();
    assert_eq!(next.id, eu1[1].id);
}

// --- tokens, idempotency keys, event delivery ---

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
    assert!(matches!(
        c.revoke_token("nope").await,
        Err(CatalogError::TokenNotFound(_))
    ));

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

// --- the catalog's own migrations ---

/// The application's first migration, with the same version as the catalog's first.
fn app_migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "widgets".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str("CREATE TABLE app_widgets (id bigint PRIMARY KEY)"),
        false,
    )])
}

/// A tenant application migrating the catalog's database with sqlx's default ledger does not
/// meet the catalog's migrations, and the catalog still opens afterwards.
async fn applications_share_the_database_without_colliding(b: Backend) {
    let ledgers = "SELECT (SELECT count(*) FROM tenantry_catalog_migrations),
                          (SELECT count(*) FROM _sqlx_migrations)";
    let (catalog, app) = if b.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&b.url).await.unwrap();
        app_migrator().run(&pool).await.unwrap();
        tenantry_catalog::open(&b.url).await.unwrap();
        app_migrator().run(&pool).await.unwrap();
        sqlx::query_as::<_, (i64, i64)>(ledgers)
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&b.url).await.unwrap();
        app_migrator().run(&pool).await.unwrap();
        tenantry_catalog::open(&b.url).await.unwrap();
        app_migrator().run(&pool).await.unwrap();
        sqlx::query_as::<_, (i64, i64)>(ledgers)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert!(
        catalog >= 2,
        "the catalog's own ledger holds its migrations"
    );
    assert_eq!(app, 1, "sqlx's default ledger holds only the application's");
    create(&*b.catalog, "acme", Isolation::Shared).await;
}

#[tokio::test]
async fn on_sqlite_applications_share_the_database_without_colliding() {
    if let Some(b) = sqlite().await {
        applications_share_the_database_without_colliding(b).await;
    }
}

#[tokio::test]
async fn on_postgres_applications_share_the_database_without_colliding() {
    if let Some(b) = postgres().await {
        applications_share_the_database_without_colliding(b).await;
    }
}

/// A SQLite catalog made before the catalog had its own ledger (migrations 1 and 2 recorded in
/// `_sqlx_migrations`) keeps its data, is not migrated twice, and gets the newer migrations.
#[tokio::test]
async fn on_sqlite_a_catalog_from_before_its_own_ledger_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let current = sqlx::migrate!("migrations/sqlite");
    let legacy = sqlx::migrate::Migrator::with_migrations(
        current.iter().filter(|m| m.version <= 2).cloned().collect(),
    );
    legacy.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO shards (name, region, engine, directory, capacity, state, source, created_at)
         VALUES ('old', 'eu-west', 'sqlite', '/tmp/old', 3, 'draining', 'runtime', '2026-01-01T00:00:00+00:00')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let catalog = tenantry_catalog::open(&url).await.unwrap();
    let shards = catalog.shards().await.unwrap();
    assert_eq!(
        (shards.len(), shards[0].state),
        (1, ShardState::Draining),
        "the data is kept"
    );
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM tenantry_catalog_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<i64> = current.iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "the catalog's rows moved out of sqlx's default ledger"
    );
    drop(catalog);
    tenantry_catalog::open(&url).await.expect("opens again");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://localhost/x", "catalog.db"] {
        match tenantry_catalog::open(url).await {
            Err(e @ CatalogError::UnsupportedUrl(_)) => {
                assert!(e.to_string().contains("postgres://"), "{e}");
            }
            Err(other) => panic!("expected UnsupportedUrl for {url}, got {other:?}"),
            Ok(_) => panic!("expected UnsupportedUrl for {url}"),
        }
    }
}

// --- metrics ---

async fn counts_group_tenants_operations_and_events(c: Arc<dyn CatalogStore>) {
    let empty = c.counts().await.unwrap();
    assert_eq!(empty, CatalogCounts::default());

    let (a, a_op) = create(&*c, "count-a", Isolation::Shared).await;
    create(&*c, "count-b", Isolation::Shared).await;
    create(&*c, "count-c", Isolation::Database).await;
    activate(&*c, &a).await;
    c.set_operation_state(a_op.id, OperationState::Succeeded, None)
        .await
        .unwrap();

    let counts = c.counts().await.unwrap();
    let tenant = |state: &str, isolation: &str, count: i64| TenantCount {
        state: state.into(),
        isolation: isolation.into(),
        region: "eu-west".into(),
        count,
    };
    assert_eq!(
        counts.tenants,
        vec![
            tenant("active", "shared", 1),
            tenant("requested", "database", 1),
            tenant("requested", "shared", 1),
        ]
    );
    let operation = |state: &str, count: i64| OperationCount {
        kind: "provision".into(),
        state: state.into(),
        count,
    };
    assert_eq!(
        counts.operations,
        vec![operation("pending", 2), operation("succeeded", 1)]
    );
    let newest = c.events(None, 0, i64::MAX).await.unwrap();
    assert_eq!(counts.last_event_seq, newest.last().unwrap().seq);
}

// --- infrastructure ---

async fn infrastructure_records_and_their_transitions(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "infra", Isolation::Shared).await;
    assert_eq!(c.infrastructure(t.id).await.unwrap(), None);
    let now = chrono::Utc::now();
    let mut infra = Infrastructure {
        id: Uuid::now_v7(),
        tenant_id: t.id,
        status: InfraStatus::Provisioning,
        tier: "professional".into(),
        cloud_provider: "AZURE".into(),
        region: "eu-west".into(),
        namespace: "tenant-infra".into(),
        configuration: serde_json::json!({ "storageGb": 100, "enableHa": false }),
        state_key: format!("tenants/{}.tfstate", t.id),
        plan: None,
        outputs: None,
        error: None,
        created_at: now,
        updated_at: now,
    };
    let requested = NewInfraTransition {
        from: None,
        to: InfraStatus::Provisioning,
        trigger: "provision requested".into(),
        details: serde_json::json!({ "operation": "x" }),
    };
    c.save_infrastructure(&infra, Some(requested), vec![])
        .await
        .unwrap();
    // Saving again (a step run twice) replaces the record but keeps its id.
    let first_id = infra.id;
    infra.id = Uuid::now_v7();
    infra.status = InfraStatus::Active;
    infra.plan = Some(serde_json::json!({ "add": 2 }));
    infra.outputs = Some(serde_json::json!({ "endpoint": "db.example" }));
    let done = NewInfraTransition {
        from: Some(InfraStatus::Provisioning),
        to: InfraStatus::Active,
        trigger: "provision complete".into(),
        details: serde_json::Value::Null,
    };
    c.save_infrastructure(
        &infra,
        Some(done),
        vec![event(EventType::InfrastructureReady)],
    )
    .await
    .unwrap();
    c.save_infrastructure(&infra, None, vec![]).await.unwrap();

    let stored = c.infrastructure(t.id).await.unwrap().unwrap();
    assert_eq!(stored.id, first_id);
    assert_eq!(stored.status, InfraStatus::Active);
    assert_eq!(stored.configuration["storageGb"], 100);
    assert_eq!(stored.outputs.unwrap()["endpoint"], "db.example");
    assert_eq!(stored.plan.unwrap()["add"], 2);

    let transitions = c.infrastructure_transitions(t.id).await.unwrap();
    let path: Vec<_> = transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        [
            (None, InfraStatus::Provisioning),
            (Some(InfraStatus::Provisioning), InfraStatus::Active)
        ]
    );
    assert_eq!(transitions[0].details["operation"], "x");
    // The event written with the record, in the same transaction.
    let events = c.events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(
        events.last().unwrap().event_type,
        EventType::InfrastructureReady
    );
}

// --- domains ---

async fn domains_name_one_live_tenant_each(c: Arc<dyn CatalogStore>) {
    let domains = |primary: &str, aliases: &[&str]| {
        let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
        TenantDomains::parse(Some(primary), &aliases).unwrap()
    };
    let acme_domains = domains("acme.example", &["www.acme.example"]);
    let (acme, acme_op) = c
        .create_tenant(
            NewTenant {
                domains: acme_domains.clone(),
                ..make_test_tenant("acme", Isolation::Shared)
            },
            cause(),
            provision_op(),
        )
        .await
        .unwrap();
    assert_eq!(c.domains(acme.id).await.unwrap(), acme_domains);
    let host = Domain::from_host("WWW.Acme.example:8443").unwrap();
    assert_eq!(c.tenant_by_domain(&host).await.unwrap().id, acme.id);

    // Another tenant cannot take one of them, at creation or later; nothing changes.
    let taken = c
        .create_tenant(
            NewTenant {
                domains: domains("www.acme.example", &[]),
                ..make_test_tenant("globex", Isolation::Shared)
            },
            cause(),
            provision_op(),
        )
        .await;
    assert!(
        matches!(&taken, Err(CatalogError::DomainTaken { domain, slug }) if domain == "www.acme.example" && slug == "acme"),
        "{taken:?}"
    );
    assert!(
        c.tenant_by_slug("globex").await.is_err(),
        "nothing was created"
    );
    let (globex, _) = create(&*c, "globex", Isolation::Shared).await;
    assert!(matches!(
        c.set_domains(globex.id, &domains("globex.example", &["acme.example"]))
            .await,
        Err(CatalogError::DomainTaken { .. })
    ));
    assert_eq!(
        c.domains(globex.id).await.unwrap(),
        TenantDomains::default()
    );

    // Changed later: the old names are free again.
    let moved = domains("shop.acme.example", &[]);
    c.set_domains(acme.id, &moved).await.unwrap();
    assert_eq!(c.domains(acme.id).await.unwrap(), moved);
    assert!(matches!(
        c.tenant_by_domain(&host).await,
        Err(CatalogError::DomainNotFound(_))
    ));
    c.set_domains(globex.id, &domains("www.acme.example", &[]))
        .await
        .unwrap();

    // A deleted tenant's names are released.
    fail_and_delete(&*c, &acme, &acme_op).await;
    assert_eq!(c.domains(acme.id).await.unwrap(), TenantDomains::default());
    c.set_domains(globex.id, &domains("shop.acme.example", &[]))
        .await
        .unwrap();
}

// --- statistics ---

async fn tenant_stats_keep_space_and_query_figures_apart(c: Arc<dyn CatalogStore>) {
    let (t, _) = create(&*c, "acme", Isolation::Shared).await;
    assert_eq!(c.tenant_stats(t.id).await.unwrap(), TenantStats::default());
    c.record_queries(t.id, 10, 25.0).await.unwrap();
    c.record_queries(t.id, 5, 5.5).await.unwrap();
    let rows: std::collections::BTreeMap<String, i64> =
        [("customers".to_owned(), 3), ("orders".to_owned(), 7)].into();
    c.save_space_stats(t.id, &rows, 8192, true).await.unwrap();
    let stats = c.tenant_stats(t.id).await.unwrap();
    assert_eq!(stats.rows, rows);
    assert_eq!((stats.size_bytes, stats.size_estimated), (8192, true));
    assert!(stats.collected_at.is_some() && stats.queries_since.is_some());
    assert_eq!((stats.queries, stats.query_ms_total), (15, 30.5));
    // Collected again: the space figures are replaced, the query figures stay.
    c.save_space_stats(t.id, &Default::default(), 0, false)
        .await
        .unwrap();
    let again = c.tenant_stats(t.id).await.unwrap();
    assert!(again.rows.is_empty());
    assert_eq!((again.queries, again.size_estimated), (15, false));
}

// --- moves ---

async fn a_relocation_moves_the_tenant_once_with_a_new_epoch(c: Arc<dyn CatalogStore>) {
    let (t, op) = create(&*c, "acme", Isolation::Shared).await;
    activate(&*c, &t).await;
    c.set_operation_state(op.id, OperationState::Succeeded, None)
        .await
        .unwrap();
    let moving = c
        .create_operation(
            t.id,
            NewOperation {
                id: Uuid::now_v7(),
                kind: OperationKind::Move,
                steps: vec!["prepare", "switch"],
                params: serde_json::json!({ "copy": {} }),
            },
        )
        .await
        .unwrap();
    let params = serde_json::json!({ "copy": { "customers": { "id": 7 } }, "copied": 7 });
    c.merge_operation_params(moving.id, &params).await.unwrap();
    assert_eq!(c.operation(moving.id).await.unwrap().params, params);
    // Merged: what the patch does not name stays.
    let cancel = serde_json::json!({ "cancel": { "by": "ops" } });
    c.merge_operation_params(moving.id, &cancel).await.unwrap();
    let copied = serde_json::json!({ "copy": { "customers": { "id": 9 } }, "copied": 9 });
    c.merge_operation_params(moving.id, &copied).await.unwrap();
    assert_eq!(
        c.operation(moving.id).await.unwrap().params,
        serde_json::json!({ "copy": { "customers": { "id": 9 } }, "copied": 9, "cancel": { "by": "ops" } })
    );

    let space = tenantry_core::space::Space {
        kind: Isolation::Database,
        shard: "eu-2".into(),
        path: None,
        database: Some("tenant_x".into()),
        schema: None,
    };
    let relocation = Relocation {
        space: space.clone(),
        shard: "eu-2".into(),
        isolation: Isolation::Database,
    };
    let before = c.tenant(t.id).await.unwrap();
    for _ in 0..2 {
        let moved = c
            .relocate(
                t.id,
                Some(relocation.clone()),
                cause(),
                vec![event(EventType::TenantMoved)],
                Some(Checkpoint {
                    operation: moving.id,
                    step: 1,
                }),
            )
            .await
            .unwrap();
        assert_eq!(moved.epoch, before.epoch + 1, "exactly once per checkpoint");
        assert_eq!(moved.space.as_ref(), Some(&space));
        assert_eq!(
            (moved.shard.as_str(), moved.isolation),
            ("eu-2", Isolation::Database)
        );
        assert_eq!(moved.placement.isolation, Isolation::Database);
        assert_eq!(moved.state, TenantState::Active);
    }
    let moved_events = c
        .events(Some(t.id), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == EventType::TenantMoved)
        .count();
    assert_eq!(moved_events, 1);

    // Without a checkpoint: the events and an audit row, and the place stays.
    let failed = c
        .relocate(
            t.id,
            None,
            cause(),
            vec![event(EventType::TenantMoveFailed)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(failed.epoch, before.epoch + 1);
    let events = c.events(Some(t.id), 0, 100).await.unwrap();
    assert_eq!(
        events.last().unwrap().event_type,
        EventType::TenantMoveFailed
    );
}
