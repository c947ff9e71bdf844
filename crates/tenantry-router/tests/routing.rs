//! The router against real spaces: the same SQL scoped to its tenant in every isolation, typed
//! refusals, the connection budget of dedicated tenants, query timings in the catalog, and a
//! tenant's writes held through a live move (PostgreSQL and SQLite).

mod fleet;

use fleet::Fleet;
use futures::future::BoxFuture;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tenantry_catalog::model::OperationKind;
use tenantry_core::Isolation;
use tenantry_orchestrator::NoProgress;
use tenantry_router::{RouterError, RouterOptions, TenantKey, TenantTx};

async fn add_customer(tx: &mut TenantTx, email: &str) -> Result<(), RouterError> {
    let tenant = tx.tenant_id().to_string();
    sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, $2)")
        .bind(tenant)
        .bind(email)
        .execute(tx.postgres().unwrap())
        .await?;
    Ok(())
}

/// Customers the transaction sees, with no filter of the application's own.
async fn visible_customers(tx: &mut TenantTx) -> Vec<String> {
    sqlx::query_scalar("SELECT tenant_id FROM customers")
        .fetch_all(tx.postgres().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_sql_reaches_only_its_tenants_rows_in_every_isolation() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let tenants = [
        fleet.tenant("shared-a", Isolation::Shared).await,
        fleet.tenant("shared-b", Isolation::Shared).await,
        fleet.tenant("schema-c", Isolation::Schema).await,
        fleet.tenant("db-d", Isolation::Database).await,
    ];
    let router = fleet.router(RouterOptions::default());
    for (i, t) in tenants.iter().enumerate() {
        let mut tx = router
            .begin(&TenantKey::Slug(t.slug.clone()))
            .await
            .unwrap();
        for n in 0..=i {
            add_customer(&mut tx, &format!("c{n}@{}.example", t.slug))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    for (i, t) in tenants.iter().enumerate() {
        // By id, by slug and by host: the same tenant, only its rows.
        for key in [
            TenantKey::Id(t.id),
            TenantKey::Slug(t.slug.clone()),
            TenantKey::from_request(Some(&format!("{}.shop.example:443", t.slug)), None).unwrap(),
        ] {
            let mut tx = router.begin(&key).await.unwrap();
            let seen = visible_customers(&mut tx).await;
            assert_eq!(seen.len(), i + 1, "{} by {key:?}", t.slug);
            assert!(seen.iter().all(|id| *id == t.id.to_string()));
            tx.rollback().await.unwrap();
        }
    }
    // A shared tenant cannot write a row of another tenant: the policy's check refuses it.
    let mut tx = router
        .begin(&TenantKey::Slug("shared-a".into()))
        .await
        .unwrap();
    let forged = sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'x@y.example')")
        .bind(tenants[1].id.to_string())
        .execute(tx.postgres().unwrap())
        .await
        .unwrap_err();
    assert!(
        forged.to_string().contains("row-level security"),
        "{forged}"
    );
    drop(tx);

    // The application role on its own, with no tenant set, reads nothing of the shared tables.
    let shared_db = tenants[0].space.as_ref().unwrap().database.clone().unwrap();
    let mut app = PgConnection::connect(&fleet.url_as("tenantry_app", &shared_db))
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    router.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_used_by_one_tenant_then_another_carries_only_the_second() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let a = fleet.tenant("alpha", Isolation::Shared).await;
    let b = fleet.tenant("beta", Isolation::Shared).await;
    let c = fleet.tenant("gamma", Isolation::Schema).await;
    let router = fleet.router(RouterOptions {
        shared_connections: 1,
        ..RouterOptions::default()
    });
    let mut backends = Vec::new();
    for t in [&a, &b, &c, &a] {
        let mut tx = router.begin(&TenantKey::Id(t.id)).await.unwrap();
        let (pid, tenant, path): (i32, Option<String>, String) = sqlx::query_as(
            "SELECT pg_backend_pid(), current_setting('tenantry.tenant_id', true), current_setting('search_path')",
        )
        .fetch_one(tx.postgres().unwrap())
        .await
        .unwrap();
        assert_eq!(tenant, Some(t.id.to_string()));
        // A schema tenant's search path, or the server's default: never the last user's.
        match &t.space.as_ref().unwrap().schema {
            Some(schema) => assert_eq!(path.trim_matches('"'), schema),
            None => assert_eq!(path, "\"$user\", public"),
        }
        backends.push(pid);
        tx.commit().await.unwrap();
    }
    backends.dedup();
    assert_eq!(backends.len(), 1, "one pooled connection served all four");
    router.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_or_unknown_tenant_is_refused_with_a_typed_error() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let t = fleet.tenant("sleepy", Isolation::Shared).await;
    let router = fleet.router(RouterOptions {
        placement_ttl: Duration::from_millis(50),
        ..RouterOptions::default()
    });
    router.begin(&TenantKey::Id(t.id)).await.unwrap();
    let (_, op) = fleet
        .orch
        .request("sleepy", OperationKind::Suspend)
        .await
        .unwrap();
    fleet.orch.run(op.id, &NoProgress).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = router.begin(&TenantKey::Id(t.id)).await.err().unwrap();
    assert!(
        matches!(refused, RouterError::Suspended { ref slug } if slug == "sleepy"),
        "{refused}"
    );
    let unknown = router
        .begin(&TenantKey::Slug("nobody".into()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(unknown, RouterError::UnknownTenant(_)),
        "{unknown}"
    );
    let no_host = router
        .begin(&TenantKey::from_request(Some("elsewhere.example"), None).unwrap())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(no_host, RouterError::UnknownTenant(_)),
        "{no_host}"
    );
}

/// Connections open now as dedicated tenants' roles.
async fn tenant_connections(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'tenant\\_%' AND application_name = 'tenantry-router'",
    )
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dedicated_tenants_share_a_budget_of_connections_and_all_are_served() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let mut tenants = Vec::new();
    for i in 0..8 {
        tenants.push(fleet.tenant(&format!("own-{i}"), Isolation::Database).await);
    }
    let router = fleet.router(RouterOptions {
        max_tenant_connections: 3,
        per_tenant_connections: 1,
        ..RouterOptions::default()
    });
    let mut admin = PgConnection::connect(&fleet.url_as("postgres", "postgres"))
        .await
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let mut rounds = Vec::new();
    for round in 0..3 {
        let mut work = Vec::new();
        for t in &tenants {
            let (router, served, key) = (router.clone(), Arc::clone(&served), TenantKey::Id(t.id));
            work.push(tokio::spawn(async move {
                let mut tx = router.begin(&key).await.unwrap();
                add_customer(&mut tx, &format!("r{round}@own.example"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.commit().await.unwrap();
                served.fetch_add(1, Ordering::SeqCst);
            }));
        }
        // Sample while the round runs.
        for _ in 0..5 {
            let open = tenant_connections(&mut admin).await;
            assert!(open <= 3, "{open} connections open over a budget of 3");
            rounds.push(open);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        futures::future::join_all(work)
            .await
            .into_iter()
            .for_each(|r| r.unwrap());
        let usage = router.dedicated_usage();
        assert!(usage.pools <= 3 && usage.connections <= 3, "{usage:?}");
    }
    assert_eq!(served.load(Ordering::SeqCst), 24);
    assert!(
        rounds.iter().any(|&n| n > 0),
        "connections were sampled while open"
    );
    for t in &tenants {
        let mut tx = router.begin(&TenantKey::Id(t.id)).await.unwrap();
        assert_eq!(visible_customers(&mut tx).await.len(), 3, "{}", t.slug);
    }
    router.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_timings_reach_the_catalog() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let t = fleet.tenant("timed", Isolation::Schema).await;
    let router = fleet.router(RouterOptions::default());
    for i in 0..5 {
        let mut tx = router.begin(&TenantKey::Id(t.id)).await.unwrap();
        add_customer(&mut tx, &format!("t{i}@timed.example"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    router.flush_stats().await;
    let stats = fleet.catalog().tenant_stats(t.id).await.unwrap();
    assert_eq!(stats.queries, 5);
    assert!(stats.query_ms_total > 0.0);
}

/// Adds a customer at the tenant's place, whichever engine it is on.
fn add_customer_anywhere(
    tx: &mut TenantTx,
    email: String,
) -> BoxFuture<'_, Result<(), RouterError>> {
    Box::pin(async move {
        let tenant = tx.tenant_id().to_string();
        match tx.sqlite() {
            Some(conn) => {
                sqlx::query("INSERT INTO customers (id, tenant_id, email) VALUES (?, ?, ?)")
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(tenant)
                    .bind(email)
                    .execute(conn)
                    .await?;
            }
            None => add_customer(tx, &email).await?,
        }
        Ok(())
    })
}

/// Every customer email the transaction sees, whichever engine it is on.
async fn emails_anywhere(tx: &mut TenantTx) -> Vec<String> {
    const EMAILS: &str = "SELECT email FROM customers";
    match tx.sqlite() {
        Some(conn) => sqlx::query_scalar(EMAILS).fetch_all(conn).await,
        None => {
            sqlx::query_scalar(EMAILS)
                .fetch_all(tx.postgres().unwrap())
                .await
        }
    }
    .unwrap()
}

/// A writer adds the tenant's customers through the router without pause while the tenant
/// moves `to`: no write fails (the router holds those its old place refuses and follows the
/// catalog), and each acknowledged write is at the new place exactly once.
async fn writes_are_held_through_a_move(fleet: Fleet, to: Isolation) {
    let t = fleet.tenant("mover", Isolation::Shared).await;
    fleet.tenant("stayer", Isolation::Shared).await;
    let router = fleet.router(RouterOptions {
        placement_ttl: Duration::from_millis(200),
        ..RouterOptions::default()
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (router, stop, key) = (router.clone(), Arc::clone(&stop), TenantKey::Id(t.id));
        tokio::spawn(async move {
            let mut written = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let email = format!("w{written}@mover.example");
                router
                    .transaction(&key, |tx| add_customer_anywhere(tx, email.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("write {written} failed: {e}"));
                written += 1;
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, op) = fleet
        .orch
        .request_move("mover", to, None, "test")
        .await
        .unwrap();
    let op = fleet.orch.run(op.id, &NoProgress).await.unwrap();
    assert_eq!(op.state.to_string(), "succeeded", "{op:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written > 0);

    // Every write is at the new place, once.
    let moved = fleet.catalog().tenant(t.id).await.unwrap();
    assert_eq!(moved.isolation, to);
    let mut tx = router.begin(&TenantKey::Id(t.id)).await.unwrap();
    let mut emails = emails_anywhere(&mut tx).await;
    emails.sort();
    emails.dedup();
    assert_eq!(
        emails.len(),
        written,
        "each acknowledged write once at the new place"
    );
    tx.commit().await.unwrap();
    router.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_the_router_are_held_through_a_move_and_none_is_lost() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    writes_are_held_through_a_move(fleet, Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_the_router_are_held_through_a_sqlite_move_and_none_is_lost() {
    writes_are_held_through_a_move(Fleet::sqlite().await, Isolation::Database).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn work_rolled_back_by_a_deadlock_runs_again_and_other_errors_do_not() {
    let Some(fleet) = Fleet::postgres().await else {
        return;
    };
    let t = fleet.tenant("retried", Isolation::Shared).await;
    let router = fleet.router(RouterOptions::default());
    let key = TenantKey::Id(t.id);
    // The first run is chosen as a deadlock's victim; the second commits.
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    router
        .transaction(&key, move |tx| {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                add_customer(tx, "once@retried.example").await?;
                if run == 0 {
                    sqlx::query(
                        "DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '40P01'; END $$",
                    )
                    .execute(tx.postgres().unwrap())
                    .await?;
                }
                Ok(())
            }) as BoxFuture<'_, Result<(), RouterError>>
        })
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let mut tx = router.begin(&key).await.unwrap();
    assert_eq!(
        visible_customers(&mut tx).await,
        [t.id.to_string()],
        "written once"
    );
    tx.commit().await.unwrap();

    // A unique violation is the application's to answer: run once, returned as it is.
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let refused = router
        .transaction(&key, move |tx| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { add_customer(tx, "once@retried.example").await })
                as BoxFuture<'_, Result<(), RouterError>>
        })
        .await
        .unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        !refused.is_conflict() && !refused.is_paused_for_move(),
        "{refused}"
    );
    router.close().await;
}
