//! A live move's building blocks against real servers: a tenant's rows go from the shared
//! database of one server to a database of its own on another while a direct-SQL writer keeps
//! inserting, updating and deleting for it and for a neighbour; after the switch the target
//! holds exactly what the source held (compared row by row, apart from the tool's checksums),
//! the neighbour was never paused, and the old place refuses the moved tenant's writes.

use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tenantry_core::{Isolation, Slug, TenantId};
use tenantry_engines::postgres::PgSpaces;
use tenantry_engines::postgres::moves::{MoveRoute, MoveTable, TouchedKeys};
use tenantry_engines::{Application, SpaceDriver};
use tenantry_testkit::postgres::TestServer;

const SHARED: &str = "tenantry_shared";

fn app() -> Application {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront");
    Application::new(dir.join("migrations"), dir.join("seeds"))
}

async fn connect(server: &TestServer, database: &str) -> PgConnection {
    PgConnection::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        server.port
    ))
    .await
    .unwrap()
}

async fn provision(driver: &PgSpaces, tenant: TenantId, isolation: Isolation) {
    let space = driver.locate(tenant, isolation).unwrap();
    driver.create(&space).await.unwrap();
    driver.migrate(&space).await.unwrap();
    driver
        .seed(&space, tenant, &Slug::parse("acme").unwrap())
        .await
        .unwrap();
    driver
        .bootstrap_admin(&space, tenant, "admin@acme.example")
        .await
        .unwrap();
}

/// Customers (with an address and an order of one item each) for `tenant`.
async fn fill(conn: &mut PgConnection, tenant: TenantId, customers: usize) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "WITH c AS (
           INSERT INTO customers (tenant_id, email, first_name)
           SELECT '{tenant}', 'c' || g || '@example.com', 'n' || g FROM generate_series(1, {customers}) g
           RETURNING id, email)
         , a AS (INSERT INTO customer_addresses (tenant_id, customer_id, kind, line1, city, country)
                 SELECT '{tenant}', id, 'billing', '1 Road', 'Town', 'GB' FROM c)
         , o AS (INSERT INTO orders (tenant_id, customer_id, order_number, currency, total_cents)
                 SELECT '{tenant}', id, row_number() OVER (), 'EUR', 100 FROM c RETURNING id)
         INSERT INTO order_items (tenant_id, order_id, sku, name, quantity, unit_price_cents)
         SELECT '{tenant}', id, 'sku', 'thing', 1, 100 FROM o"
    )))
    .execute(conn)
    .await
    .unwrap();
}

/// Keeps writing for `tenant` until `stop`: inserts, updates and deletes on customers,
/// addresses and orders. A write refused because the tenant is being moved counts in
/// `refused`; a lost deadlock is retried; any other error fails the test.
async fn write_until(
    mut conn: PgConnection,
    tenant: TenantId,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) {
    let mut n: u64 = 1_000_000;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let statement = match n % 5 {
            0 => format!(
                "INSERT INTO customers (tenant_id, email) VALUES ('{tenant}', 'w{n}@example.com')"
            ),
            1 => format!(
                "UPDATE customers SET first_name = 'u{n}', updated_at = now()
                 WHERE id = (SELECT id FROM customers WHERE tenant_id = '{tenant}' ORDER BY random() LIMIT 1)"
            ),
            2 => format!(
                "DELETE FROM customer_addresses
                 WHERE id = (SELECT id FROM customer_addresses WHERE tenant_id = '{tenant}' ORDER BY random() LIMIT 1)"
            ),
            3 => format!(
                "WITH o AS (INSERT INTO orders (tenant_id, customer_id, order_number, currency)
                   SELECT '{tenant}', id, {n}, 'USD' FROM customers WHERE tenant_id = '{tenant}' LIMIT 1
                   RETURNING id)
                 INSERT INTO order_items (tenant_id, order_id, sku, name, quantity, unit_price_cents)
                 SELECT '{tenant}', id, 'w', 'written', 2, 50 FROM o"
            ),
            _ => format!(
                "UPDATE orders SET status = 'paid'
                 WHERE id = (SELECT id FROM orders WHERE tenant_id = '{tenant}' AND status = 'pending' LIMIT 1)"
            ),
        };
        match sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
        {
            Ok(_) => {
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            // Installing the capture triggers can deadlock with a writer holding one table and
            // wanting the next; the loser retries, as an application would.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("40P01") => {}
            Err(e) => panic!("writer of {tenant}: {e}"),
        }
    }
}

/// Every row of the tenant's tables, as JSON, in key order: compared without the tool.
async fn snapshot(conn: &mut PgConnection, tenant: TenantId, tables: &[MoveTable]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in tables {
        let rows: Vec<Value> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM \"{}\" t WHERE tenant_id = $1 ORDER BY {}",
            t.name,
            t.key.join(", ")
        )))
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        out.push(Value::from(rows));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_from_shared_to_its_own_database_on_another_server_under_writes() {
    let (Some(from), Some(to)) = (TestServer::start().await, TestServer::start().await) else {
        return;
    };
    let source_driver = PgSpaces::new("pg-a", &from.url, SHARED, app()).unwrap();
    let target_driver = PgSpaces::new("pg-b", &to.url, SHARED, app()).unwrap();
    let (moving, neighbour) = (TenantId::generate(), TenantId::generate());
    provision(&source_driver, moving, Isolation::Shared).await;
    provision(&source_driver, neighbour, Isolation::Shared).await;
    let mut shared = connect(&from, SHARED).await;
    fill(&mut shared, moving, 3000).await;
    fill(&mut shared, neighbour, 500).await;
    let source = source_driver.locate(moving, Isolation::Shared).unwrap();
    let target = target_driver.locate(moving, Isolation::Database).unwrap();
    target_driver.create(&target).await.unwrap();
    target_driver.migrate(&target).await.unwrap();

    // Writers for both tenants, running through the whole move.
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> = (0..2)
        .map(|_| (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))))
        .collect();
    let mut writers = Vec::new();
    for (tenant, (refused, done)) in [moving, neighbour].into_iter().zip(&counters) {
        writers.push(tokio::spawn(write_until(
            connect(&from, SHARED).await,
            tenant,
            stop.clone(),
            refused.clone(),
            done.clone(),
        )));
    }

    let route = MoveRoute {
        tenant: moving,
        source: &source,
        to: &target_driver,
        target: &target,
    };
    let tables = source_driver.move_tables(&source).await.unwrap();
    let position = |name: &str| tables.iter().position(|t| t.name == name).unwrap();
    assert!(position("customers") < position("orders"), "parents first");
    source_driver.start_capture(&source, moving).await.unwrap();
    let mut copied = 0;
    for table in &tables {
        let mut after = None;
        loop {
            let (n, last) = source_driver
                .copy_batch(route, table, after.as_ref(), 500)
                .await
                .unwrap();
            copied += n;
            match last {
                Some(key) => after = Some(key),
                None => break,
            }
        }
    }
    // Every row, give or take what the writers inserted and deleted meanwhile (the change log
    // brings those; the rows are compared one by one below).
    assert!(copied > 3000 * 4 - 1000, "{copied}");
    // A batch copied again (a retry after a crash between its commit and its checkpoint)
    // passes: its rows are there already (every row is compared with the source below).
    let (again, _) = source_driver
        .copy_batch(route, &tables[0], None, 500)
        .await
        .unwrap();
    assert!(again > 0);
    let mut target_conn = connect(&to, target.database.as_deref().unwrap()).await;
    // Catch up while the writers go on.
    for _ in 0..3 {
        while source_driver
            .apply_changes(route, &tables, 200)
            .await
            .unwrap()
            > 0
        {}
    }
    // The full comparison, while the writers go on: the source at a snapshot, the target with
    // exactly the changes that snapshot saw.
    let (at_snapshot, seen) = source_driver
        .snapshot_checksums(&source, moving, &tables)
        .await
        .unwrap();
    source_driver
        .apply_listed_changes(route, &tables, &seen)
        .await
        .unwrap();
    assert_eq!(
        target_driver
            .checksums(&target, moving, &tables)
            .await
            .unwrap(),
        at_snapshot
    );
    // From here, every applied change's rows are noted; the pause compares just those.
    let mut touched = TouchedKeys::default();
    while source_driver
        .apply_changes_noting(route, &tables, 200, &mut touched)
        .await
        .unwrap()
        > 0
    {}
    let neighbour_before = counters[1].1.load(Ordering::Relaxed);
    let pause = source_driver.pause_writes(&source, moving).await.unwrap();
    let paused_at = std::time::Instant::now();
    while source_driver
        .apply_changes_noting(route, &tables, 1000, &mut touched)
        .await
        .unwrap()
        > 0
    {}
    assert!(
        !touched.is_empty(),
        "the writers changed rows after the comparison"
    );
    let at_source = source_driver
        .touched_checksums(&source, moving, &tables, &touched)
        .await
        .unwrap();
    let at_target = target_driver
        .touched_checksums(&target, moving, &tables, &touched)
        .await
        .unwrap();
    assert_eq!(at_source, at_target);
    assert_eq!(
        source_driver
            .checksums(&source, moving, &tables)
            .await
            .unwrap(),
        target_driver
            .checksums(&target, moving, &tables)
            .await
            .unwrap(),
        "equal at the snapshot and on every row touched since: equal in full"
    );
    target_driver
        .advance_sequences(&target, &tables)
        .await
        .unwrap();
    // Independently of the checksums: the rows themselves.
    let mut source_conn = connect(&from, SHARED).await;
    assert_eq!(
        snapshot(&mut source_conn, moving, &tables).await,
        snapshot(&mut target_conn, moving, &tables).await
    );
    // The neighbour kept writing while the moving tenant was paused.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(counters[1].1.load(Ordering::Relaxed) > neighbour_before);
    let refused_during_pause = counters[0].0.load(Ordering::Relaxed);
    assert!(
        refused_during_pause > 0,
        "the moving tenant's writer was paused"
    );
    pause.release(true).await.unwrap();
    eprintln!("writes paused for {:?}", paused_at.elapsed());

    // The old place refuses the moved tenant's writes for good; the neighbour goes on.
    let refused_after = counters[0].0.load(Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(counters[0].0.load(Ordering::Relaxed) > refused_after);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        snapshot(&mut source_conn, moving, &tables).await,
        snapshot(&mut target_conn, moving, &tables).await,
        "nothing reached the old place after the switch"
    );
    // The comparisons can fail: a row altered behind the mover's back is caught, in full and
    // among the touched rows.
    sqlx::query(
        "UPDATE customers SET first_name = coalesce(first_name, '') || ' (altered)' WHERE tenant_id = $1",
    )
    .bind(moving.to_string())
    .execute(&mut target_conn)
    .await
    .unwrap();
    assert_ne!(
        source_driver
            .checksums(&source, moving, &tables)
            .await
            .unwrap(),
        target_driver
            .checksums(&target, moving, &tables)
            .await
            .unwrap()
    );
    assert_ne!(
        source_driver
            .touched_checksums(&source, moving, &tables, &touched)
            .await
            .unwrap(),
        target_driver
            .touched_checksums(&target, moving, &tables, &touched)
            .await
            .unwrap()
    );
    assert!(counters[0].1.load(Ordering::Relaxed) > 0 && counters[1].1.load(Ordering::Relaxed) > 0);

    // Done with it: the capture goes, and with no tenant left under move, its triggers.
    source_driver.stop_capture(&source, moving).await.unwrap();
    let triggers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'tenantry_capture'")
            .fetch_one(&mut source_conn)
            .await
            .unwrap();
    assert_eq!(triggers, 0);
    source_driver.close().await;
    target_driver.close().await;
}
