//! No tenant sees another's data: random operations of many tenants — in the shared database, in
//! schemas and in databases of their own, on PostgreSQL and on SQLite — go through the storefront
//! and the router, and after every step each tenant reads exactly the rows a model of its own
//! operations says it has: through the storefront's API, and through the router with SQL that
//! does not filter by tenant (where the database is the wall). Tenants also try to read and
//! change each other's rows by id, and are told there is no such row.

#[path = "../../tenantry-router/tests/fleet/mod.rs"]
mod fleet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fleet::Fleet;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tenantry_catalog::model::Tenant;
use tenantry_core::{Engine, Isolation};
use tenantry_router::{Router, RouterOptions, Scoped, TenantKey};
use tenantry_storefront::Storefront;
use tenantry_storefront::store::{Summary, TABLES};
use tower::ServiceExt;

/// How a request names its tenant.
#[derive(Debug, Clone, Copy)]
enum Via {
    Host,
    Slug,
    Id,
}

#[derive(Debug, Clone)]
enum Op {
    AddCustomer {
        tenant: usize,
        via: Via,
    },
    DeleteCustomer {
        tenant: usize,
        pick: usize,
    },
    AddAddress {
        tenant: usize,
        pick: usize,
    },
    OpenCart {
        tenant: usize,
        pick: Option<usize>,
    },
    PutItem {
        tenant: usize,
        pick: usize,
        sku: u8,
        quantity: i64,
    },
    RemoveItem {
        tenant: usize,
        pick: usize,
        sku: u8,
    },
    Checkout {
        tenant: usize,
        pick: usize,
    },
    /// `tenant` reads and changes `victim`'s customer and cart by their ids.
    Trespass {
        tenant: usize,
        victim: usize,
        pick: usize,
    },
}

fn ops(tenants: usize) -> impl Strategy<Value = Vec<Op>> {
    let t = 0..tenants;
    let via = prop_oneof![Just(Via::Host), Just(Via::Slug), Just(Via::Id)];
    let op = prop_oneof![
        3 => (t.clone(), via).prop_map(|(tenant, via)| Op::AddCustomer { tenant, via }),
        1 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::DeleteCustomer { tenant, pick }),
        1 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::AddAddress { tenant, pick }),
        2 => (t.clone(), proptest::option::of(any::<usize>()))
            .prop_map(|(tenant, pick)| Op::OpenCart { tenant, pick }),
        3 => (t.clone(), any::<usize>(), 0u8..4, 1i64..5)
            .prop_map(|(tenant, pick, sku, quantity)| Op::PutItem { tenant, pick, sku, quantity }),
        1 => (t.clone(), any::<usize>(), 0u8..4)
            .prop_map(|(tenant, pick, sku)| Op::RemoveItem { tenant, pick, sku }),
        2 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::Checkout { tenant, pick }),
        1 => (t.clone(), t, any::<usize>())
            .prop_map(|(tenant, victim, pick)| Op::Trespass { tenant, victim, pick }),
    ];
    proptest::collection::vec(op, 1..24)
}

#[derive(Debug, Clone)]
struct CustomerModel {
    id: String,
    email: String,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct CartModel {
    id: String,
    customer: Option<usize>,
    status: &'static str,
    items: BTreeMap<String, i64>,
}

/// What one tenant has, by its own operations.
#[derive(Debug, Clone, Default)]
struct Model {
    customers: Vec<CustomerModel>,
    addresses: i64,
    carts: Vec<CartModel>,
    cart_items: i64,
    orders: i64,
    order_items: i64,
    next_email: usize,
}

impl Model {
    fn summary(&self) -> Summary {
        Summary {
            customers: self.customers.len() as i64,
            customer_addresses: self.addresses,
            shopping_carts: self.carts.len() as i64,
            cart_items: self.cart_items,
            orders: self.orders,
            order_items: self.order_items,
        }
    }

    /// (email, deleted) of every customer, sorted.
    fn customers(&self) -> Vec<(String, bool)> {
        let mut all: Vec<_> = self
            .customers
            .iter()
            .map(|c| (c.email.clone(), c.deleted))
            .collect();
        all.sort();
        all
    }
}

/// The fleet's tenants, the storefront over them and a model per tenant.
struct World {
    fleet: Fleet,
    router: Router,
    routes: axum::Router,
    tenants: Vec<Tenant>,
}

impl World {
    async fn new(fleet: Fleet, isolations: &[Isolation]) -> Self {
        let mut tenants = Vec::new();
        for (i, isolation) in isolations.iter().enumerate() {
            let slug = format!("{}-{i}", isolation.to_string().to_lowercase());
            tenants.push(fleet.tenant(&slug, *isolation).await);
        }
        // Few shared connections, so that tenants take turns on the same ones.
        let router = fleet.router(RouterOptions {
            shared_connections: 2,
            max_tenant_connections: 4,
            ..RouterOptions::default()
        });
        let routes = Storefront::new(router.clone(), None, None).routes();
        Self {
            fleet,
            router,
            routes,
            tenants,
        }
    }

    async fn call(
        &self,
        tenant: usize,
        via: Via,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let t = &self.tenants[tenant];
        let mut request = Request::builder().method(method).uri(path);
        request = match via {
            Via::Host => request.header("host", format!("{}.shop.example", t.slug)),
            Via::Slug => request.header("x-tenant", &t.slug),
            Via::Id => request.header("x-tenant", t.id.to_string()),
        };
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.routes.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// Empties every tenant's tables, so that each case starts from nothing.
    async fn reset(&self) {
        for t in &self.tenants {
            let mut tx = self.router.begin(&TenantKey::Id(t.id)).await.unwrap();
            for table in TABLES.iter().rev() {
                let statement = format!("DELETE FROM {table} WHERE tenant_id = $1");
                let statement = sqlx::AssertSqlSafe(statement);
                match tx.scoped() {
                    Scoped::Postgres(c) => sqlx::query(statement)
                        .bind(t.id.to_string())
                        .execute(&mut **c)
                        .await
                        .map(|r| r.rows_affected()),
                    Scoped::Sqlite(c) => sqlx::query(statement)
                        .bind(t.id.to_string())
                        .execute(&mut **c)
                        .await
                        .map(|r| r.rows_affected()),
                }
                .unwrap();
            }
            tx.commit().await.unwrap();
        }
    }

    /// Applies `op` to the storefront and to the models, checking the answer.
    async fn apply(&self, op: &Op, models: &mut [Model]) -> Result<(), TestCaseError> {
        match *op {
            Op::AddCustomer { tenant, via } => {
                let m = &mut models[tenant];
                // The same emails in every tenant: unique per tenant, not across them.
                let email = format!("c{}@shop.example", m.next_email);
                m.next_email += 1;
                let (status, body) = self
                    .call(
                        tenant,
                        via,
                        Method::POST,
                        "/customers",
                        Some(json!({ "email": email })),
                    )
                    .await;
                prop_assert_eq!(status, StatusCode::CREATED, "{}", body);
                m.customers.push(CustomerModel {
                    id: body["id"].as_str().unwrap().to_owned(),
                    email,
                    deleted: false,
                });
            }
            Op::DeleteCustomer { tenant, pick } => {
                let m = &mut models[tenant];
                if m.customers.is_empty() {
                    return Ok(());
                }
                let i = pick % m.customers.len();
                let path = format!("/customers/{}", m.customers[i].id);
                let (status, body) = self
                    .call(tenant, Via::Slug, Method::DELETE, &path, None)
                    .await;
                if m.customers[i].deleted {
                    prop_assert_eq!(status, StatusCode::NOT_FOUND, "{}", body);
                } else {
                    prop_assert_eq!(status, StatusCode::NO_CONTENT, "{}", body);
                    m.customers[i].deleted = true;
                    for cart in &mut m.carts {
                        if cart.customer == Some(i) && cart.status == "open" {
                            cart.status = "abandoned";
                        }
                    }
                }
            }
            Op::AddAddress { tenant, pick } => {
                let m = &mut models[tenant];
                if m.customers.is_empty() {
                    return Ok(());
                }
                let path = format!(
                    "/customers/{}/addresses",
                    m.customers[pick % m.customers.len()].id
                );
                let address = json!({ "kind": "shipping", "line1": "1 Main St", "city": "Lyon", "country": "FR", "is_default": pick % 2 == 0 });
                let (status, body) = self
                    .call(tenant, Via::Host, Method::POST, &path, Some(address))
                    .await;
                prop_assert_eq!(status, StatusCode::CREATED, "{}", body);
                m.addresses += 1;
            }
            Op::OpenCart { tenant, pick } => {
                let m = &mut models[tenant];
                let customer = pick
                    .filter(|_| !m.customers.is_empty())
                    .map(|p| p % m.customers.len());
                let body = json!({ "customer_id": customer.map(|i| m.customers[i].id.clone()) });
                let (status, body) = self
                    .call(tenant, Via::Id, Method::POST, "/carts", Some(body))
                    .await;
                if customer.is_some_and(|i| m.customers[i].deleted) {
                    prop_assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", body);
                } else {
                    prop_assert_eq!(status, StatusCode::CREATED, "{}", body);
                    m.carts.push(CartModel {
                        id: body["id"].as_str().unwrap().to_owned(),
                        customer,
                        status: "open",
                        items: BTreeMap::new(),
                    });
                }
            }
            Op::PutItem {
                tenant,
                pick,
                sku,
                quantity,
            } => {
                let m = &mut models[tenant];
                if m.carts.is_empty() {
                    return Ok(());
                }
                let cart = pick % m.carts.len();
                let sku = format!("SKU-{sku}");
                let path = format!("/carts/{}/items", m.carts[cart].id);
                let item = json!({ "sku": sku, "quantity": quantity, "unit_price_cents": 250 });
                let (status, body) = self
                    .call(tenant, Via::Slug, Method::PUT, &path, Some(item))
                    .await;
                if m.carts[cart].status != "open" {
                    prop_assert_eq!(status, StatusCode::CONFLICT, "{}", body);
                } else {
                    prop_assert_eq!(status, StatusCode::OK, "{}", body);
                    if m.carts[cart].items.insert(sku, quantity).is_none() {
                        m.cart_items += 1;
                    }
                }
            }
            Op::RemoveItem { tenant, pick, sku } => {
                let m = &mut models[tenant];
                if m.carts.is_empty() {
                    return Ok(());
                }
                let cart = pick % m.carts.len();
                let sku = format!("SKU-{sku}");
                let path = format!("/carts/{}/items/{sku}", m.carts[cart].id);
                let (status, body) = self
                    .call(tenant, Via::Host, Method::DELETE, &path, None)
                    .await;
                if m.carts[cart].status != "open" {
                    prop_assert_eq!(status, StatusCode::CONFLICT, "{}", body);
                } else if m.carts[cart].items.remove(&sku).is_some() {
                    prop_assert_eq!(status, StatusCode::OK, "{}", body);
                    m.cart_items -= 1;
                } else {
                    prop_assert_eq!(status, StatusCode::NOT_FOUND, "{}", body);
                }
            }
            Op::Checkout { tenant, pick } => {
                let m = &mut models[tenant];
                if m.carts.is_empty() {
                    return Ok(());
                }
                let cart = pick % m.carts.len();
                let path = format!("/carts/{}/checkout", m.carts[cart].id);
                let (status, body) = self.call(tenant, Via::Id, Method::POST, &path, None).await;
                let c = &mut m.carts[cart];
                if c.status != "open" {
                    prop_assert_eq!(status, StatusCode::CONFLICT, "{}", body);
                } else if c.customer.is_none() || c.items.is_empty() {
                    prop_assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", body);
                } else {
                    prop_assert_eq!(status, StatusCode::CREATED, "{}", body);
                    m.orders += 1;
                    prop_assert_eq!(
                        body["order_number"].as_i64(),
                        Some(m.orders),
                        "order numbers count per tenant"
                    );
                    m.order_items += c.items.len() as i64;
                    c.status = "converted";
                }
            }
            Op::Trespass {
                tenant,
                victim,
                pick,
            } => {
                if tenant == victim {
                    return Ok(());
                }
                let v = &models[victim];
                if let Some(c) = v.customers.get(pick % v.customers.len().max(1)) {
                    let path = format!("/customers/{}", c.id);
                    let (status, _) = self.call(tenant, Via::Slug, Method::GET, &path, None).await;
                    prop_assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "read another tenant's customer"
                    );
                    let change = json!({ "first_name": "trespasser" });
                    let (status, _) = self
                        .call(tenant, Via::Slug, Method::PATCH, &path, Some(change))
                        .await;
                    prop_assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "changed another tenant's customer"
                    );
                    let (status, _) = self
                        .call(tenant, Via::Host, Method::DELETE, &path, None)
                        .await;
                    prop_assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "deleted another tenant's customer"
                    );
                }
                if let Some(cart) = v.carts.get(pick % v.carts.len().max(1)) {
                    let path = format!("/carts/{}/items", cart.id);
                    let item = json!({ "sku": "SKU-X", "quantity": 1, "unit_price_cents": 1 });
                    let (status, _) = self
                        .call(tenant, Via::Id, Method::PUT, &path, Some(item))
                        .await;
                    prop_assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "filled another tenant's cart"
                    );
                }
            }
        }
        Ok(())
    }

    /// Every tenant reads exactly its model's rows.
    async fn check(&self, models: &[Model]) -> Result<(), TestCaseError> {
        for (i, (t, model)) in self.tenants.iter().zip(models).enumerate() {
            let (status, summary) = self.call(i, Via::Slug, Method::GET, "/summary", None).await;
            prop_assert_eq!(status, StatusCode::OK);
            let summary: Summary = serde_json::from_value(summary).unwrap();
            prop_assert_eq!(&summary, &model.summary(), "{}'s summary", t.slug);

            let (_, listed) = self
                .call(i, Via::Host, Method::GET, "/customers?limit=1000", None)
                .await;
            let mut listed: Vec<(String, bool)> = listed
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    assert_eq!(
                        c["first_name"],
                        Value::Null,
                        "a trespasser changed {}'s customer",
                        t.slug
                    );
                    (
                        c["email"].as_str().unwrap().to_owned(),
                        c["deleted"].as_bool().unwrap(),
                    )
                })
                .collect();
            listed.sort();
            prop_assert_eq!(
                &listed,
                &model.customers(),
                "{}'s customers through the storefront",
                t.slug
            );

            let unfiltered = self.unfiltered(t).await;
            prop_assert_eq!(
                &unfiltered.0,
                &model.summary(),
                "{}'s tables read without a tenant filter",
                t.slug
            );
            let emails: Vec<String> = model.customers().into_iter().map(|c| c.0).collect();
            prop_assert_eq!(
                &unfiltered.1,
                &emails,
                "{}'s emails read without a tenant filter",
                t.slug
            );
        }
        Ok(())
    }

    /// The tenant's row counts and customers' emails read through the router with SQL that
    /// names no tenant — except in SQLite's shared file, where nothing but the query separates
    /// tenants (the database has no row-level security), so the query filters there.
    async fn unfiltered(&self, t: &Tenant) -> (Summary, Vec<String>) {
        let filter = if t.isolation == Isolation::Shared && self.fleet.server.is_none() {
            format!(" WHERE tenant_id = '{}'", t.id)
        } else {
            String::new()
        };
        let mut tx = self.router.begin(&TenantKey::Id(t.id)).await.unwrap();
        let mut counts = Vec::new();
        for table in TABLES {
            let statement = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}{filter}"));
            let n: i64 = match tx.scoped() {
                Scoped::Postgres(c) => sqlx::query_scalar(statement).fetch_one(&mut **c).await,
                Scoped::Sqlite(c) => sqlx::query_scalar(statement).fetch_one(&mut **c).await,
            }
            .unwrap();
            counts.push(n);
        }
        let statement = sqlx::AssertSqlSafe(format!(
            "SELECT email FROM customers{filter} ORDER BY email"
        ));
        let emails: Vec<String> = match tx.scoped() {
            Scoped::Postgres(c) => {
                // The connection carries this tenant's setting and no other's.
                let setting: Option<String> =
                    sqlx::query_scalar("SELECT current_setting('tenantry.tenant_id', true)")
                        .fetch_one(&mut **c)
                        .await
                        .unwrap();
                assert_eq!(setting, Some(t.id.to_string()));
                sqlx::query_scalar(statement).fetch_all(&mut **c).await
            }
            Scoped::Sqlite(c) => sqlx::query_scalar(statement).fetch_all(&mut **c).await,
        }
        .unwrap();
        tx.commit().await.unwrap();
        let summary = Summary {
            customers: counts[0],
            customer_addresses: counts[1],
            shopping_carts: counts[2],
            cart_items: counts[3],
            orders: counts[4],
            order_items: counts[5],
        };
        (summary, emails)
    }

    /// Counts of the shared tables read as the application role with no tenant set.
    async fn rows_seen_without_a_tenant(&self) -> i64 {
        let shared = self
            .tenants
            .iter()
            .find(|t| t.isolation == Isolation::Shared)
            .unwrap();
        let database = shared.space.as_ref().unwrap().database.clone().unwrap();
        let url = self
            .fleet
            .url_as(tenantry_engines::postgres::APP_ROLE, &database);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let mut seen = 0;
        for table in TABLES {
            let statement = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
            seen += sqlx::query_scalar::<_, i64>(statement)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        }
        seen
    }
}

/// Runs `cases` random operation sequences against `world`.
fn drive(rt: &tokio::runtime::Runtime, world: &World, cases: u32) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&ops(world.tenants.len()), |ops| {
            rt.block_on(async {
                world.reset().await;
                let mut models = vec![Model::default(); world.tenants.len()];
                for op in &ops {
                    world.apply(op, &mut models).await?;
                    world.check(&models).await?;
                }
                if world.fleet.server.is_some() {
                    prop_assert_eq!(world.rows_seen_without_a_tenant().await, 0);
                }
                Ok(())
            })
        })
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn on_postgres_every_tenant_reads_exactly_its_own_rows_whatever_its_isolation() {
    let rt = runtime();
    let Some(fleet) = rt.block_on(Fleet::postgres()) else {
        return;
    };
    assert_eq!(fleet.config.shards[0].engine, Engine::Postgres);
    let isolations = [
        Isolation::Shared,
        Isolation::Shared,
        Isolation::Schema,
        Isolation::Schema,
        Isolation::Database,
        Isolation::Database,
    ];
    let world = rt.block_on(World::new(fleet, &isolations));
    drive(&rt, &world, 16);
    rt.block_on(world.router.close());
}

#[test]
fn on_sqlite_every_tenant_reads_exactly_its_own_rows_whatever_its_isolation() {
    let rt = runtime();
    let fleet = rt.block_on(Fleet::sqlite());
    let isolations = [
        Isolation::Shared,
        Isolation::Shared,
        Isolation::Shared,
        Isolation::Database,
        Isolation::Database,
    ];
    let world = rt.block_on(World::new(fleet, &isolations));
    drive(&rt, &world, 16);
    rt.block_on(world.router.close());
}
