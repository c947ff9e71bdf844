//! The PostgreSQL driver against real servers: one private server per test (roles are
//! cluster-wide, so tests never share one), stopped and removed when the test ends.

use secrecy::ExposeSecret;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenantry_core::space::Space;
use tenantry_core::{Isolation, Slug, TenantId};
use tenantry_engines::driver::Credentials;
use tenantry_engines::postgres::{APP_ROLE, IDLE_CONNECTIONS, PgSpaces};
use tenantry_engines::{Application, SpaceDriver, SpaceError, SpaceStatus};
use tenantry_testkit::postgres::TestServer;

const SHARED: &str = "tenantry_shared";

/// The storefront's tables, all of which carry `tenant_id`.
const APP_TABLES: [&str; 8] = [
    "cart_items",
    "customer_addresses",
    "customers",
    "order_items",
    "orders",
    "shopping_carts",
    "store_settings",
    "users",
];

fn storefront_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront")
}

fn make_test_app() -> Application {
    let dir = storefront_dir();
    Application::new(dir.join("migrations"), dir.join("seeds"))
}

fn make_test_driver(server: &TestServer, app: Application) -> PgSpaces {
    PgSpaces::new("pg-1", &server.url, SHARED, app).unwrap()
}

fn slug() -> Slug {
    Slug::parse("acme").unwrap()
}

/// A URL of `server` for `user` (with `password`) and `database`.
fn url_as(server: &TestServer, user: &str, password: Option<&str>, database: &str) -> String {
    let auth = match password {
        Some(p) => format!("{user}:{p}"),
        None => user.to_owned(),
    };
    format!("postgres://{auth}@127.0.0.1:{}/{database}", server.port)
}

fn credentials_url(server: &TestServer, credentials: &Credentials, database: &str) -> String {
    url_as(
        server,
        &credentials.role,
        Some(credentials.password.expose_secret()),
        database,
    )
}

async fn admin_on(server: &TestServer, database: &str) -> PgConnection {
    PgConnection::connect(&url_as(server, "postgres", None, database))
        .await
        .unwrap()
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The SQLSTATE of a failed connection attempt, `None` when it succeeds.
async fn connect_refusal(url: &str) -> Option<String> {
    match PgConnection::connect(url).await {
        Ok(conn) => {
            conn.close().await.unwrap();
            None
        }
        Err(e) => Some(sqlstate(&e).unwrap_or_else(|| format!("not a database error: {e}"))),
    }
}

/// Makes the server check passwords (SCRAM) for every role but the `postgres` superuser, so
/// that credentials are really tested (test servers start with `trust`).
async fn require_passwords(server: &TestServer) {
    let mut admin = admin_on(server, "postgres").await;
    let hba: String = sqlx::query_scalar("SHOW hba_file")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(!hba.contains('\''), "{hba}");
    let rules = [
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 scram-sha-256",
    ]
    .map(|r| format!("('{r}')"))
    .join(", ");
    for sql in [
        format!("COPY (SELECT r FROM (VALUES {rules}) v(r)) TO '{hba}'"),
        "SELECT pg_reload_conf()".to_owned(),
        "CREATE ROLE hba_probe LOGIN PASSWORD 'right'".to_owned(),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    // The reload is asynchronous: wait until a wrong password is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let wrong = url_as(server, "hba_probe", Some("wrong"), "postgres");
    while connect_refusal(&wrong).await.is_none() {
        assert!(Instant::now() < deadline, "pg_hba.conf was never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        connect_refusal(&url_as(server, "hba_probe", Some("right"), "postgres")).await,
        None
    );
    admin.close().await.unwrap();
}

/// How many databases and roles are named `name`.
async fn databases_and_roles(admin: &mut PgConnection, name: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1),
                (SELECT count(*) FROM pg_roles WHERE rolname = $1)",
    )
    .bind(name)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// When migration 1 was recorded in `ledger`.
async fn installed_on_1(admin: &mut PgConnection, ledger: &str) -> String {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT installed_on::text FROM {ledger} WHERE version = 1"
    )))
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Runs every provisioning method twice, checking each is idempotent; returns the credentials
/// of the last `create`.
async fn provision(driver: &PgSpaces, space: &Space, tenant: TenantId) -> Option<Credentials> {
    let first = driver.create(space).await.unwrap();
    let credentials = driver.create(space).await.unwrap();
    match (space.kind, &first, &credentials) {
        (Isolation::Database, Some(a), Some(b)) => {
            assert_eq!(a.role, b.role);
            assert_eq!(Some(&a.role), space.database.as_ref());
            assert!(b.password.expose_secret().len() >= 32);
            assert_ne!(
                a.password.expose_secret(),
                b.password.expose_secret(),
                "each create hands out a fresh password"
            );
        }
        (Isolation::Database, _, _) => panic!("a database space must come with credentials"),
        _ => assert!(first.is_none() && credentials.is_none()),
    }
    assert_eq!(driver.migrate(space).await.unwrap(), Some(4));
    assert_eq!(driver.migrate(space).await.unwrap(), Some(4));
    assert!(driver.pending_migrations(space).await.unwrap().is_empty());
    assert_eq!(driver.seed(space, tenant, &slug()).await.unwrap(), 1);
    assert_eq!(driver.seed(space, tenant, &slug()).await.unwrap(), 0);
    for _ in 0..2 {
        driver
            .bootstrap_admin(space, tenant, "admin@acme.example")
            .await
            .unwrap();
    }
    assert_eq!(
        driver.status(space, tenant).await.unwrap(),
        SpaceStatus {
            exists: true,
            schema_version: Some(4),
            admins: 1,
            seeds_applied: 1,
            // store_settings, users, and the seed ledger
            tenant_rows: 3,
            role_exists: (space.kind == Isolation::Database).then_some(true),
        }
    );
    credentials
}

#[tokio::test]
async fn every_isolation_is_created_migrated_seeded_and_bootstrapped_idempotently() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    for isolation in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        assert!(driver.supports(isolation));
        let tenant = TenantId::generate();
        let space = driver.locate(tenant, isolation).unwrap();
        let (database, schema) = match isolation {
            Isolation::Shared => (SHARED.to_owned(), None),
            Isolation::Schema => (SHARED.to_owned(), Some(format!("t_{}", tenant.simple()))),
            Isolation::Database => (format!("tenant_{}", tenant.simple()), None),
        };
        assert_eq!(
            space,
            Space {
                kind: isolation,
                shard: "pg-1".into(),
                path: None,
                database: Some(database.clone()),
                schema: schema.clone(),
            }
        );
        assert_eq!(
            driver.status(&space, tenant).await.unwrap(),
            SpaceStatus::default()
        );
        provision(&driver, &space, tenant).await;

        // Everything of a schema space is in its schema, its ledger included.
        if let Some(schema) = &schema {
            let mut admin = admin_on(&server, &database).await;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = $1 ORDER BY 1",
            )
            .bind(schema)
            .fetch_all(&mut admin)
            .await
            .unwrap();
            for t in APP_TABLES
                .iter()
                .chain(&["_sqlx_migrations", "tenantry_seeds"])
            {
                assert!(tables.contains(&t.to_string()), "{t} not in {tables:?}");
            }
            let versions: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{schema}\"._sqlx_migrations"
            )))
            .fetch_one(&mut admin)
            .await
            .unwrap();
            assert_eq!(versions, 4);
        }
    }
    driver.close().await;
}

#[tokio::test]
async fn shared_rows_are_invisible_without_the_tenant_setting_and_confined_with_it() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let space = driver.locate(a, Isolation::Shared).unwrap();
    for t in [a, b] {
        provision(&driver, &space, t).await;
    }

    // Every table with tenant_id has forced RLS and the policy; the application role is
    // neither superuser, nor BYPASSRLS, nor owner of anything.
    let mut admin = admin_on(&server, SHARED).await;
    let secured: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                EXISTS (SELECT 1 FROM pg_policy p
                        WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
         FROM pg_class c JOIN information_schema.columns col
           ON col.table_schema = 'public' AND col.table_name = c.relname
          AND col.column_name = 'tenant_id'
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
         ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let names: Vec<&str> = secured.iter().map(|s| s.0.as_str()).collect();
    let mut expected: Vec<&str> = APP_TABLES.to_vec();
    expected.push("tenantry_seeds");
    expected.sort();
    assert_eq!(names, expected);
    for (table, enabled, forced, policy) in &secured {
        assert!(
            enabled & forced & policy,
            "{table}: {enabled} {forced} {policy}"
        );
    }
    let (superuser, bypass, login): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
    )
    .bind(APP_ROLE)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(!superuser && !bypass && login);
    let owned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relowner = $1::regrole")
            .bind(APP_ROLE)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(owned, 0);

    // Without the setting: nothing, in every table.
    let app_url = url_as(&server, APP_ROLE, None, SHARED);
    let mut app = PgConnection::connect(&app_url).await.unwrap();
    for table in APP_TABLES {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut app)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} without the tenant setting");
    }
    // The control plane's ledger is not the application's.
    let ledger = sqlx::query("SELECT 1 FROM tenantry_seeds")
        .execute(&mut app)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&ledger).as_deref(), Some("42501"));

    // With A's setting: A's rows only; B's rows can be neither written nor made.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in ["store_settings", "users"] {
        let owners: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT tenant_id FROM {table}")))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(owners, [a.to_string()], "{table} under A's setting");
    }
    sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'ann@a.example')")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let moved = sqlx::query("UPDATE users SET tenant_id = $1")
        .bind(b.to_string())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&moved).as_deref(), Some("42501"));
    tx.rollback().await.unwrap();
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let foreign =
        sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'x@b.example')")
            .bind(b.to_string())
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&foreign).as_deref(), Some("42501"));
    tx.rollback().await.unwrap();
    app.close().await.unwrap();

    // A pooled connection used for A and then for B never carries A's setting.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&app_url)
        .await
        .unwrap();
    let pid_a: i32;
    {
        let mut tx = pool.begin().await.unwrap();
        pid_a = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
            .bind(a.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM store_settings")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().await.unwrap();
    }
    let mut tx = pool.begin().await.unwrap();
    let (pid_b, leftover): (i32, Option<String>) =
        sqlx::query_as("SELECT pg_backend_pid(), current_setting('tenantry.tenant_id', true)")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(pid_a, pid_b, "the same pooled connection");
    assert!(
        leftover.as_deref().unwrap_or_default().is_empty(),
        "{leftover:?}"
    );
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM store_settings")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(before, 0, "nothing before B's setting");
    sqlx::query("SELECT set_config('tenantry.tenant_id', $1, true)")
        .bind(b.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let owners: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM store_settings")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(owners, [b.to_string()]);
    tx.commit().await.unwrap();
    pool.close().await;

    // Removing A, whose customer has an order (a RESTRICT foreign key), leaves B's rows.
    for t in [a, b] {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "WITH c AS (INSERT INTO customers (tenant_id, email) VALUES ('{t}', 'c@x.example')
                        RETURNING tenant_id, id)
             INSERT INTO orders (tenant_id, customer_id, order_number, currency)
             SELECT tenant_id, id, 1, 'EUR' FROM c"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    let b_before = driver.status(&space, b).await.unwrap();
    assert_eq!(b_before.tenant_rows, 5);
    driver.remove(&space, a).await.unwrap();
    driver.remove(&space, a).await.unwrap();
    let a_after = driver.status(&space, a).await.unwrap();
    assert_eq!((a_after.exists, a_after.tenant_rows), (true, 0));
    assert_eq!(driver.status(&space, b).await.unwrap(), b_before);
    admin.close().await.unwrap();
    driver.close().await;
}

#[tokio::test]
async fn a_schema_tenant_is_reached_through_its_search_path_and_dropped_with_its_schema() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let (space_a, space_b) = (
        driver.locate(a, Isolation::Schema).unwrap(),
        driver.locate(b, Isolation::Schema).unwrap(),
    );
    provision(&driver, &space_a, a).await;
    provision(&driver, &space_b, b).await;
    let schema_a = space_a.schema.clone().unwrap();

    // The application role reaches the tenant's tables through its search path.
    let app_url = format!(
        "{}?options=-c%20search_path%3D{schema_a}",
        url_as(&server, APP_ROLE, None, SHARED)
    );
    let mut app = PgConnection::connect(&app_url).await.unwrap();
    let owners: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM store_settings")
        .fetch_all(&mut app)
        .await
        .unwrap();
    assert_eq!(owners, [a.to_string()]);
    sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'ann@a.example')")
        .bind(a.to_string())
        .execute(&mut app)
        .await
        .unwrap();
    app.close().await.unwrap();

    driver.remove(&space_a, a).await.unwrap();
    driver.remove(&space_a, a).await.unwrap();
    assert_eq!(
        driver.status(&space_a, a).await.unwrap(),
        SpaceStatus::default()
    );
    let mut admin = admin_on(&server, SHARED).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema_a)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(driver.status(&space_b, b).await.unwrap().tenant_rows, 3);
    admin.close().await.unwrap();
    driver.close().await;
}

#[tokio::test]
async fn a_database_tenants_role_reaches_its_own_database_only() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    require_passwords(&server).await;
    let driver = make_test_driver(&server, make_test_app());
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let (space_a, space_b) = (
        driver.locate(a, Isolation::Database).unwrap(),
        driver.locate(b, Isolation::Database).unwrap(),
    );
    let creds_a = provision(&driver, &space_a, a).await.unwrap();
    let creds_b = provision(&driver, &space_b, b).await.unwrap();
    let (db_a, db_b) = (
        space_a.database.clone().unwrap(),
        space_b.database.clone().unwrap(),
    );

    // Its own database: connect, read, write; but create nothing.
    let mut own = PgConnection::connect(&credentials_url(&server, &creds_a, &db_a))
        .await
        .unwrap();
    let owners: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM store_settings")
        .fetch_all(&mut own)
        .await
        .unwrap();
    assert_eq!(owners, [a.to_string()]);
    sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'ann@a.example')")
        .bind(a.to_string())
        .execute(&mut own)
        .await
        .unwrap();
    let create = sqlx::query("CREATE TABLE mine (id int)")
        .execute(&mut own)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&create).as_deref(), Some("42501"));
    own.close().await.unwrap();

    // Another tenant's database, or the shared one: refused for lack of privilege.
    assert_eq!(
        connect_refusal(&credentials_url(&server, &creds_a, &db_b))
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        connect_refusal(&credentials_url(&server, &creds_b, &db_a))
            .await
            .as_deref(),
        Some("42501")
    );
    // A wrong password: refused by authentication.
    assert_eq!(
        connect_refusal(&url_as(&server, &creds_a.role, Some("wrong"), &db_a))
            .await
            .as_deref(),
        Some("28P01")
    );

    // A resumed create hands out a fresh password; the previous one stops working.
    let fresh = driver.create(&space_a).await.unwrap().unwrap();
    assert_eq!(
        connect_refusal(&credentials_url(&server, &creds_a, &db_a))
            .await
            .as_deref(),
        Some("28P01")
    );
    assert_eq!(
        connect_refusal(&credentials_url(&server, &fresh, &db_a)).await,
        None
    );

    // Removal drops the database and the role, and nothing of B.
    driver.remove(&space_a, a).await.unwrap();
    driver.remove(&space_a, a).await.unwrap();
    assert_eq!(
        driver.status(&space_a, a).await.unwrap(),
        SpaceStatus::default()
    );
    let mut admin = admin_on(&server, "postgres").await;
    assert_eq!(databases_and_roles(&mut admin, &db_a).await, (0, 0));
    assert_eq!(
        connect_refusal(&credentials_url(&server, &creds_b, &db_b)).await,
        None
    );
    assert_eq!(driver.status(&space_b, b).await.unwrap().tenant_rows, 3);
    admin.close().await.unwrap();
    driver.close().await;
}

#[tokio::test]
async fn a_pooled_database_is_adopted_as_it_is_with_its_password_handed_over() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    require_passwords(&server).await;
    let driver = make_test_driver(&server, make_test_app());
    let first = driver.create_pooled().await.unwrap();
    let second = driver.create_pooled().await.unwrap();
    assert_ne!(first.database, second.database);
    for pooled in [&first, &second] {
        assert!(pooled.database.starts_with("tenant_pool_"), "{pooled:?}");
        assert_eq!(pooled.credentials.role, pooled.database);
        assert_eq!(pooled.schema_version, Some(4));
    }
    assert_eq!(
        connect_refusal(&credentials_url(
            &server,
            &first.credentials,
            &first.database
        ))
        .await,
        None
    );
    // Warm connections are kept into the first pooled databases: they do not stand in the way
    // of anything below (an adoption renames nothing).
    driver
        .keep_warm(&[first.database.clone(), second.database.clone()])
        .await
        .unwrap();

    let tenant = TenantId::generate();
    let (space, credentials) = driver
        .adopt(&first.database, tenant, Some(&first.credentials))
        .await
        .unwrap();
    assert_eq!(
        space,
        Space::dedicated_database(&space.shard, &first.database)
    );
    assert_eq!(credentials.role, first.database);
    let status = driver.status(&space, tenant).await.unwrap();
    assert_eq!((status.exists, status.schema_version), (true, Some(4)));
    // The warm-up ran the seeds and the first admin in a transaction it rolled back.
    let mut inside = admin_on(&server, &first.database).await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tenantry_seeds)
              + (SELECT count(*) FROM store_settings)",
    )
    .fetch_one(&mut inside)
    .await
    .unwrap();
    assert_eq!(rows, 0, "the warm-up left nothing behind");
    inside.close().await.unwrap();
    assert!(driver.pending_migrations(&space).await.unwrap().is_empty());

    // The pooled role's password is handed over (never given to anyone before): it works,
    // with privileges on the tables.
    assert_eq!(
        credentials.password.expose_secret(),
        first.credentials.password.expose_secret()
    );
    let mut own = PgConnection::connect(&credentials_url(&server, &credentials, &first.database))
        .await
        .unwrap();
    sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, 'ann@a.example')")
        .bind(tenant.to_string())
        .execute(&mut own)
        .await
        .unwrap();
    own.close().await.unwrap();

    // Without the pooled credentials, the role gets a fresh password and the old one stops
    // working.
    let (again, fresh) = driver.adopt(&first.database, tenant, None).await.unwrap();
    assert_eq!(again, space);
    assert_ne!(
        fresh.password.expose_secret(),
        credentials.password.expose_secret()
    );
    assert_eq!(
        connect_refusal(&credentials_url(&server, &credentials, &first.database))
            .await
            .as_deref(),
        Some("28P01")
    );
    assert_eq!(
        connect_refusal(&credentials_url(&server, &fresh, &first.database)).await,
        None
    );

    // Then it is an ordinary database space: seeded, with its admin, then removed with its
    // role, the other pooled database untouched.
    assert_eq!(driver.seed(&space, tenant, &slug()).await.unwrap(), 1);
    driver
        .bootstrap_admin(&space, tenant, "admin@acme.example")
        .await
        .unwrap();
    assert_eq!(driver.status(&space, tenant).await.unwrap().admins, 1);
    driver.remove(&space, tenant).await.unwrap();
    let mut admin = admin_on(&server, "postgres").await;
    assert_eq!(
        databases_and_roles(&mut admin, &first.database).await,
        (0, 0)
    );
    assert_eq!(
        databases_and_roles(&mut admin, &second.database).await,
        (1, 1)
    );

    // Only pooled databases can be adopted.
    for not_pooled in ["postgres", "tenant_pool_gone", "tenant_pool_X; DROP"] {
        let err = driver.adopt(not_pooled, TenantId::generate(), None).await;
        assert!(matches!(err, Err(SpaceError::NotPooled(_))), "{err:?}");
    }
    admin.close().await.unwrap();
    driver.close().await;
}

/// A copy of the storefront whose migrations the test may break.
struct AppCopy {
    _dir: tempfile::TempDir,
    migrations: PathBuf,
    seeds: PathBuf,
    app: Application,
}

fn make_test_app_copy() -> AppCopy {
    let dir = tempfile::tempdir().unwrap();
    let (migrations, seeds) = (
        dir.path().join("migrations/postgres"),
        dir.path().join("seeds"),
    );
    for (from, to) in [("migrations/postgres", &migrations), ("seeds", &seeds)] {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(storefront_dir().join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
    AppCopy {
        app: Application::new(dir.path().join("migrations"), &seeds),
        migrations,
        seeds,
        _dir: dir,
    }
}

fn original_migration(file: &str) -> String {
    std::fs::read_to_string(storefront_dir().join("migrations/postgres").join(file)).unwrap()
}

#[tokio::test]
async fn a_failed_migration_resumes_where_it_stopped_and_a_changed_one_is_refused() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let copy = make_test_app_copy();
    let driver = make_test_driver(&server, copy.app.clone());
    for isolation in [Isolation::Schema, Isolation::Database, Isolation::Shared] {
        let orders = copy.migrations.join("0002_orders.sql");
        std::fs::write(
            &orders,
            original_migration("0002_orders.sql") + "\nSELECT no_such_function();\n",
        )
        .unwrap();
        let tenant = TenantId::generate();
        let space = driver.locate(tenant, isolation).unwrap();
        driver.create(&space).await.unwrap();
        let pending = driver.pending_migrations(&space).await.unwrap();
        assert_eq!(
            pending,
            [
                (1, "customers".to_owned()),
                (2, "orders".to_owned()),
                (3, "carts".to_owned()),
                (4, "users".to_owned()),
            ]
        );

        let failed = driver.migrate(&space).await.unwrap_err();
        assert!(
            matches!(
                &failed,
                SpaceError::Migrate {
                    source: MigrateError::ExecuteMigration(_, 2),
                    ..
                }
            ),
            "{failed:?}"
        );
        assert!(!failed.is_transient());
        let versions = |p: Vec<(i64, String)>| p.into_iter().map(|(v, _)| v).collect::<Vec<_>>();
        assert_eq!(
            versions(driver.pending_migrations(&space).await.unwrap()),
            [2, 3, 4]
        );
        assert_eq!(
            driver.status(&space, tenant).await.unwrap().schema_version,
            Some(1)
        );
        let ledger = match &space.schema {
            Some(schema) => format!("\"{schema}\"._sqlx_migrations"),
            None => "_sqlx_migrations".to_owned(),
        };
        let mut admin = admin_on(&server, space.database.as_deref().unwrap()).await;
        let first_installed = installed_on_1(&mut admin, &ledger).await;

        // Fixed: resumes at 2, without running 1 again.
        std::fs::write(&orders, original_migration("0002_orders.sql")).unwrap();
        assert_eq!(driver.migrate(&space).await.unwrap(), Some(4));
        assert!(driver.pending_migrations(&space).await.unwrap().is_empty());
        assert_eq!(installed_on_1(&mut admin, &ledger).await, first_installed);

        // An applied migration that changed is refused, and nothing runs.
        let customers = copy.migrations.join("0001_customers.sql");
        std::fs::write(
            &customers,
            original_migration("0001_customers.sql") + "\n-- edited\n",
        )
        .unwrap();
        let changed = driver.migrate(&space).await.unwrap_err();
        assert!(
            matches!(changed, SpaceError::MigrationChanged { version: 1, .. }),
            "{changed:?}"
        );
        std::fs::write(&customers, original_migration("0001_customers.sql")).unwrap();
        admin.close().await.unwrap();
    }
    driver.close().await;
}

#[tokio::test]
async fn seeds_run_once_per_tenant_and_a_changed_one_is_refused() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let copy = make_test_app_copy();
    let driver = make_test_driver(&server, copy.app.clone());
    for isolation in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        std::fs::remove_file(copy.seeds.join("0002_staff.sql")).ok();
        let seed = copy.seeds.join("0001_store_settings.sql");
        let original =
            std::fs::read_to_string(storefront_dir().join("seeds/0001_store_settings.sql"))
                .unwrap();
        std::fs::write(&seed, &original).unwrap();
        let tenant = TenantId::generate();
        let space = driver.locate(tenant, isolation).unwrap();
        provision(&driver, &space, tenant).await;

        // A new seed runs (once); the first does not run again.
        std::fs::write(
            copy.seeds.join("0002_staff.sql"),
            "INSERT INTO users (tenant_id, email) VALUES ('{{tenant_id}}', '{{tenant_slug}}@staff.example');",
        )
        .unwrap();
        assert_eq!(driver.seed(&space, tenant, &slug()).await.unwrap(), 1);
        assert_eq!(driver.seed(&space, tenant, &slug()).await.unwrap(), 0);
        let status = driver.status(&space, tenant).await.unwrap();
        assert_eq!(
            (status.seeds_applied, status.admins, status.tenant_rows),
            (2, 1, 5)
        );

        // An applied seed that changed is refused.
        std::fs::write(&seed, original.replace("'UTC'", "'Europe/Paris'")).unwrap();
        let changed = driver.seed(&space, tenant, &slug()).await.unwrap_err();
        assert!(
            matches!(&changed, SpaceError::SeedChanged { name, .. } if name == "0001_store_settings.sql"),
            "{changed:?}"
        );
    }
    driver.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemas_of_one_database_migrate_in_parallel_but_one_schema_never_twice_at_once() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = Arc::new(make_test_driver(&server, make_test_app()));
    let spaces: Vec<Space> = (0..4)
        .map(|_| {
            driver
                .locate(TenantId::generate(), Isolation::Schema)
                .unwrap()
        })
        .collect();
    for space in &spaces {
        driver.create(space).await.unwrap();
    }

    // Someone holds the lock of the first schema: it waits, the others do not.
    let mut holder = admin_on(&server, SHARED).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PgSpaces::migration_lock_key(&spaces[0]))
        .execute(&mut holder)
        .await
        .unwrap();
    let blocked = {
        let (driver, space) = (Arc::clone(&driver), spaces[0].clone());
        tokio::spawn(async move { driver.migrate(&space).await })
    };
    let others: Vec<_> = spaces[1..]
        .iter()
        .flat_map(|space| [space.clone(), space.clone()])
        .map(|space| {
            let driver = Arc::clone(&driver);
            tokio::spawn(async move { driver.migrate(&space).await })
        })
        .collect();
    for other in others {
        // Each of these schemas migrated twice at once: both succeed, once applied.
        assert_eq!(other.await.unwrap().unwrap(), Some(4));
    }
    assert!(!blocked.is_finished(), "migrated while its lock was held");
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PgSpaces::migration_lock_key(&spaces[0]))
        .execute(&mut holder)
        .await
        .unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), Some(4));
    holder.close().await.unwrap();
    driver.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn many_tenants_of_one_shard_are_provisioned_at_once() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = Arc::new(make_test_driver(&server, make_test_app()));
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let driver = Arc::clone(&driver);
            let isolation = [Isolation::Shared, Isolation::Schema, Isolation::Database][i % 3];
            tokio::spawn(async move {
                let tenant = TenantId::generate();
                let space = driver.locate(tenant, isolation)?;
                driver.create(&space).await?;
                let version = driver.migrate(&space).await?;
                driver.seed(&space, tenant, &slug()).await?;
                driver
                    .bootstrap_admin(&space, tenant, "admin@acme.example")
                    .await?;
                let status = driver.status(&space, tenant).await?;
                Ok::<_, SpaceError>((version, status.admins, status.seeds_applied))
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), (Some(4), 1, 1));
    }
    driver.close().await;
}

#[tokio::test]
async fn an_unreachable_shard_is_a_transient_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = PgSpaces::new(
        "pg-1",
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        SHARED,
        make_test_app(),
    )
    .unwrap();
    let space = driver
        .locate(TenantId::generate(), Isolation::Database)
        .unwrap();
    let err = driver
        .status(&space, TenantId::generate())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// The backends the driver has open into `database`: (pid, backend start) pairs.
async fn driver_backends(admin: &mut PgConnection, database: &str) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, backend_start::text FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'tenantry' ORDER BY pid",
    )
    .bind(database)
    .fetch_all(&mut *admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn one_connection_serves_consecutive_calls_into_a_space_and_a_claimed_pooled_database_starts_warm()
 {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    let mut admin = admin_on(&server, "postgres").await;
    let tenant = TenantId::generate();
    let space = driver.locate(tenant, Isolation::Database).unwrap();
    let database = space.database.clone().unwrap();
    provision(&driver, &space, tenant).await;
    // Every call of `provision` went through one connection, parked between calls.
    let parked = driver_backends(&mut admin, &database).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    driver.status(&space, tenant).await.unwrap();
    assert_eq!(driver_backends(&mut admin, &database).await, parked);

    // The next pooled database to be claimed has a warm connection waiting, and the tenant
    // that adopts it works through that one: seeds, first admin and status start on a warm
    // backend.
    let pooled = driver.create_pooled().await.unwrap();
    driver
        .keep_warm(std::slice::from_ref(&pooled.database))
        .await
        .unwrap();
    let warm = driver_backends(&mut admin, &pooled.database).await;
    assert_eq!(warm.len(), 1, "{warm:?}");
    driver
        .keep_warm(std::slice::from_ref(&pooled.database))
        .await
        .unwrap();
    assert_eq!(driver_backends(&mut admin, &pooled.database).await, warm);
    let other = TenantId::generate();
    let (adopted, _) = driver.adopt(&pooled.database, other, None).await.unwrap();
    provision(&driver, &adopted, other).await;
    assert_eq!(driver_backends(&mut admin, &pooled.database).await, warm);

    // Removal closes what is parked rather than leave it to be killed.
    driver.remove(&space, tenant).await.unwrap();
    assert!(driver_backends(&mut admin, &database).await.is_empty());
    driver.close().await;
}

#[tokio::test]
async fn calls_never_close_their_connections_and_upkeep_closes_the_oldest_surplus() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    let mut admin = admin_on(&server, "postgres").await;
    let spaces: Vec<(TenantId, Space)> = (0..IDLE_CONNECTIONS + 2)
        .map(|_| {
            let tenant = TenantId::generate();
            (tenant, driver.locate(tenant, Isolation::Database).unwrap())
        })
        .collect();
    for (tenant, space) in &spaces {
        provision(&driver, space, *tenant).await;
    }
    let databases: Vec<String> = spaces
        .iter()
        .map(|(_, space)| space.database.clone().unwrap())
        .collect();
    // A backend's exit is seen a moment after its connection is closed.
    async fn open_per_database(admin: &mut PgConnection, databases: &[String]) -> Vec<usize> {
        let mut open = Vec::new();
        for database in databases {
            open.push(driver_backends(admin, database).await.len());
        }
        open
    }
    let all_open = vec![1; databases.len()];
    assert_eq!(open_per_database(&mut admin, &databases).await, all_open);

    driver.tidy().await;
    let mut kept = vec![0, 0];
    kept.extend(vec![1; IDLE_CONNECTIONS]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_per_database(&mut admin, &databases).await;
        if open == kept {
            break;
        }
        assert!(Instant::now() < deadline, "after upkeep: {open:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The ones kept still serve their spaces.
    let (tenant, space) = spaces.last().unwrap();
    let before = driver_backends(&mut admin, &databases[databases.len() - 1]).await;
    driver.status(space, *tenant).await.unwrap();
    assert_eq!(
        driver_backends(&mut admin, &databases[databases.len() - 1]).await,
        before
    );
    driver.close().await;
}

#[tokio::test]
async fn statistics_count_the_tenants_rows_and_measure_its_space() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let driver = make_test_driver(&server, make_test_app());
    let (a, b, c, d) = (
        TenantId::generate(),
        TenantId::generate(),
        TenantId::generate(),
        TenantId::generate(),
    );
    let spaces = [
        (a, driver.locate(a, Isolation::Shared).unwrap()),
        (b, driver.locate(b, Isolation::Shared).unwrap()),
        (c, driver.locate(c, Isolation::Schema).unwrap()),
        (d, driver.locate(d, Isolation::Database).unwrap()),
    ];
    for (tenant, space) in &spaces {
        provision(&driver, space, *tenant).await;
    }
    let mut shared = admin_on(&server, SHARED).await;
    for i in 0..40 {
        let tenant = if i < 30 { a } else { b };
        sqlx::query("INSERT INTO customers (tenant_id, email) VALUES ($1, $2)")
            .bind(tenant.to_string())
            .bind(format!("c{i}@example.com"))
            .execute(&mut shared)
            .await
            .unwrap();
    }
    let stats_a = driver.statistics(&spaces[0].1, a).await.unwrap();
    assert_eq!(stats_a.rows["customers"], 30, "{stats_a:?}");
    assert_eq!(stats_a.rows["users"], 1);
    assert!(!stats_a.rows.contains_key("tenantry_seeds"));
    assert!(
        stats_a.size_estimated && stats_a.size_bytes > 0,
        "{stats_a:?}"
    );
    let stats_b = driver.statistics(&spaces[1].1, b).await.unwrap();
    assert_eq!(stats_b.rows["customers"], 10);
    for (tenant, space) in &spaces[2..] {
        let own = driver.statistics(space, *tenant).await.unwrap();
        assert!(!own.size_estimated && own.size_bytes > 0, "{own:?}");
        assert_eq!(own.rows["customers"], 0);
    }
    // The database's size is the whole database's: larger than a schema's tables.
    let schema = driver.statistics(&spaces[2].1, c).await.unwrap();
    let database = driver.statistics(&spaces[3].1, d).await.unwrap();
    assert!(database.size_bytes > schema.size_bytes);
    driver.close().await;
}
