//! A big tenant moves under a steady write load, and nothing is lost, duplicated or stale.
//!
//! The tenant (`LOAD_MOVE_CUSTOMERS` customers, 100,000 by default, each with an address and
//! an order of one item, and a cart for one in ten) lives in the shared database of `eu-west-1`
//! beside a neighbour. Storefront writers (through the router) and a direct-SQL writer (a plain
//! connection to wherever the catalog says the tenant lives) insert, update and delete rows of
//! all six tables while the tenant moves to a database of its own on `eu-west-2`, rolls back,
//! moves again and completes. Every writer keeps a ledger of what it committed, built from its
//! own requests and answers — never read back from the database — and after each phase the
//! tenant's rows at its place must be exactly the seeded rows with every ledger applied: this
//! check is independent of the move's own verifier. The neighbour's rows never change.

#[path = "../../tenantry-router/tests/fleet/mod.rs"]
mod fleet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use fleet::Fleet;
use http_body_util::BodyExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tenantry_catalog::model::Tenant;
use tenantry_core::{Isolation, TenantId};
use tenantry_orchestrator::NoProgress;
use tenantry_router::RouterOptions;
use tenantry_storefront::Storefront;
use tower::ServiceExt;

/// (table, key) → the row's projection, or `None` once deleted.
type Ledger = BTreeMap<(&'static str, String), Option<String>>;

/// A writer's changes: (table, key), its step number, the epoch of the place, when.
type History = Vec<(
    (&'static str, String),
    usize,
    i64,
    chrono::DateTime<chrono::Utc>,
)>;

/// Per table: the key and the projection of a row, as SQL over the table's columns. Timestamps
/// are left out (the storefront does not answer them); everything a writer sets is in.
const PROJECTIONS: [(&str, &str, &str); 6] = [
    (
        "customers",
        "id::text",
        "concat_ws('|', email, coalesce(first_name, '-'), (deleted_at IS NOT NULL)::text)",
    ),
    (
        "customer_addresses",
        "id::text",
        "concat_ws('|', customer_id::text, kind, line1, city, country::text, is_default::text)",
    ),
    (
        "shopping_carts",
        "id::text",
        "concat_ws('|', coalesce(customer_id::text, '-'), status)",
    ),
    (
        "cart_items",
        "cart_id::text || '/' || sku",
        "concat_ws('|', quantity::text, unit_price_cents::text)",
    ),
    (
        "orders",
        "id::text",
        "concat_ws('|', customer_id::text, order_number::text, status, currency::text, total_cents::text)",
    ),
    (
        "order_items",
        "order_id::text || '/' || sku",
        "concat_ws('|', name, quantity::text, unit_price_cents::text)",
    ),
];

fn customers_env() -> i64 {
    std::env::var("LOAD_MOVE_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A superuser connection to the tenant's place, per the catalog.
async fn connect_to(fleet: &Fleet, tenant: &Tenant) -> PgConnection {
    let space = tenant.space.as_ref().unwrap();
    let server = match space.shard.as_str() {
        "eu-west-1" => fleet.server.as_ref().unwrap(),
        _ => fleet.second.as_ref().unwrap(),
    };
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        server.port,
        space.database.as_deref().unwrap()
    );
    let mut conn = PgConnection::connect(&url).await.unwrap();
    if let Some(schema) = &space.schema {
        sqlx::query(AssertSqlSafe(format!("SET search_path = \"{schema}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn
}

/// Every row of the tenant at its place, projected.
async fn rows(fleet: &Fleet, tenant: TenantId) -> Ledger {
    let tenant = fleet.catalog().tenant(tenant).await.unwrap();
    let mut conn = connect_to(fleet, &tenant).await;
    let mut all = Ledger::new();
    for (table, key, projection) in PROJECTIONS {
        let found = sqlx::query(AssertSqlSafe(format!(
            "SELECT {key} AS k, {projection} AS p FROM {table} WHERE tenant_id = $1"
        )))
        .bind(tenant.id.to_string())
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for row in found {
            let previous = all.insert((table, row.get("k")), Some(row.get("p")));
            assert!(previous.is_none(), "{table}: a key twice");
        }
    }
    all
}

/// Seeds `n` customers (and their addresses, orders, items; carts for one in ten) of `tenant`
/// in the shared database, as the superuser.
async fn seed(fleet: &Fleet, tenant: &Tenant, n: i64) {
    let mut conn = connect_to(fleet, tenant).await;
    for sql in [
        "INSERT INTO customers (id, tenant_id, email, first_name)
         SELECT md5($1 || 'c' || g)::uuid, $1, 'c' || g || '@shop.example', 'seed' FROM generate_series(1, $2) g",
        "INSERT INTO customer_addresses (id, tenant_id, customer_id, kind, line1, city, country)
         SELECT md5($1 || 'a' || g)::uuid, $1, md5($1 || 'c' || g)::uuid, 'shipping', g || ' Main St', 'Lyon', 'FR'
         FROM generate_series(1, $2) g",
        "INSERT INTO orders (id, tenant_id, customer_id, order_number, currency, total_cents)
         SELECT md5($1 || 'o' || g)::uuid, $1, md5($1 || 'c' || g)::uuid, g, 'EUR', 500 FROM generate_series(1, $2) g",
        "INSERT INTO order_items (tenant_id, order_id, sku, name, quantity, unit_price_cents)
         SELECT $1, md5($1 || 'o' || g)::uuid, 'SKU-1', 'Thing', 1, 500 FROM generate_series(1, $2) g",
        "INSERT INTO shopping_carts (id, tenant_id, customer_id)
         SELECT md5($1 || 'k' || g)::uuid, $1, md5($1 || 'c' || g)::uuid FROM generate_series(1, $2 / 10) g",
        "INSERT INTO cart_items (tenant_id, cart_id, sku, quantity, unit_price_cents)
         SELECT $1, md5($1 || 'k' || g)::uuid, 'SKU-1', 1, 100 FROM generate_series(1, $2 / 10) g",
    ] {
        sqlx::query(sql)
            .bind(tenant.id.to_string())
            .bind(n)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
}

/// A writer through the storefront: customers it creates, with their addresses, carts, items
/// and orders; every answer goes to its ledger.
struct StoreWriter {
    routes: axum::Router,
    slug: String,
    rng: StdRng,
    ledger: Ledger,
    customers: Vec<(String, bool)>,
    carts: Vec<(String, usize)>,
    orders: Vec<String>,
    n: usize,
}

impl StoreWriter {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-tenant", &self.slug);
        let request = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                request.body(Body::from(body.to_string()))
            }
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.routes.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn customer(&mut self, c: &Value) {
        let first = c["first_name"].as_str().unwrap_or("-");
        let projection = format!("{}|{first}|{}", c["email"].as_str().unwrap(), c["deleted"]);
        self.ledger.insert(
            ("customers", c["id"].as_str().unwrap().into()),
            Some(projection),
        );
    }

    /// A cart's answer: the cart and each of its items; items it no longer has are deleted.
    fn cart(&mut self, cart: &Value) {
        let id = cart["id"].as_str().unwrap().to_owned();
        let customer = cart["customer_id"].as_str().unwrap_or("-");
        let projection = format!("{customer}|{}", cart["status"].as_str().unwrap());
        self.ledger
            .insert(("shopping_carts", id.clone()), Some(projection));
        let prefix = format!("{id}/");
        for (key, value) in self.ledger.iter_mut() {
            if key.0 == "cart_items" && key.1.starts_with(&prefix) {
                *value = None;
            }
        }
        for item in cart["items"].as_array().unwrap() {
            let key = format!("{id}/{}", item["sku"].as_str().unwrap());
            let projection = format!("{}|{}", item["quantity"], item["unit_price_cents"]);
            self.ledger.insert(("cart_items", key), Some(projection));
        }
    }

    fn order(&mut self, order: &Value) {
        let id = order["id"].as_str().unwrap().to_owned();
        let projection = format!(
            "{}|{}|{}|{}|{}",
            order["customer_id"].as_str().unwrap(),
            order["order_number"],
            order["status"].as_str().unwrap(),
            order["currency"].as_str().unwrap(),
            order["total_cents"]
        );
        self.ledger.insert(("orders", id.clone()), Some(projection));
        for item in order["items"].as_array().unwrap() {
            let key = format!("{id}/{}", item["sku"].as_str().unwrap());
            let projection = format!(
                "{}|{}|{}",
                item["name"].as_str().unwrap(),
                item["quantity"],
                item["unit_price_cents"]
            );
            self.ledger.insert(("order_items", key), Some(projection));
        }
    }

    /// One random write; failures that change nothing (a conflict, a move held too long) are
    /// allowed and leave the ledger as it is.
    async fn step(&mut self) {
        self.n += 1;
        let live: Vec<usize> = (0..self.customers.len())
            .filter(|&i| !self.customers[i].1)
            .collect();
        let choice = if live.is_empty() {
            0
        } else {
            self.rng.random_range(0..10)
        };
        match choice {
            0 => {
                let email = format!("{}-w{}@shop.example", self.slug, self.n);
                let (status, c) = self
                    .call(Method::POST, "/customers", Some(json!({ "email": email })))
                    .await;
                if status == StatusCode::CREATED {
                    self.customer(&c);
                    self.customers
                        .push((c["id"].as_str().unwrap().into(), false));
                }
            }
            1 => {
                let i = live[self.rng.random_range(0..live.len())];
                let path = format!("/customers/{}", self.customers[i].0);
                let body = json!({ "first_name": format!("n{}", self.n) });
                let (status, c) = self.call(Method::PATCH, &path, Some(body)).await;
                if status == StatusCode::OK {
                    self.customer(&c);
                }
            }
            2 => {
                let i = live[self.rng.random_range(0..live.len())];
                let path = format!("/customers/{}/addresses", self.customers[i].0);
                let body = json!({ "kind": "billing", "line1": format!("{} Rue", self.n), "city": "Paris", "country": "FR" });
                let (status, a) = self.call(Method::POST, &path, Some(body)).await;
                if status == StatusCode::CREATED {
                    let projection = format!(
                        "{}|billing|{}|Paris|FR|false",
                        a["customer_id"].as_str().unwrap(),
                        a["line1"].as_str().unwrap()
                    );
                    self.ledger.insert(
                        ("customer_addresses", a["id"].as_str().unwrap().into()),
                        Some(projection),
                    );
                }
            }
            3 | 4 => {
                let i = live[self.rng.random_range(0..live.len())];
                let body = json!({ "customer_id": self.customers[i].0 });
                let (status, cart) = self.call(Method::POST, "/carts", Some(body)).await;
                if status == StatusCode::CREATED {
                    self.cart(&cart);
                    self.carts.push((cart["id"].as_str().unwrap().into(), i));
                }
            }
            5 | 6 if !self.carts.is_empty() => {
                let (cart, _) = self.carts[self.rng.random_range(0..self.carts.len())].clone();
                let sku = format!("SKU-{}", self.rng.random_range(0..3));
                let (status, body) = if choice == 5 {
                    let item = json!({ "sku": sku, "quantity": self.rng.random_range(1..5), "unit_price_cents": 250 });
                    self.call(Method::PUT, &format!("/carts/{cart}/items"), Some(item))
                        .await
                } else {
                    self.call(Method::DELETE, &format!("/carts/{cart}/items/{sku}"), None)
                        .await
                };
                if status == StatusCode::OK {
                    self.cart(&body);
                }
            }
            7 if !self.carts.is_empty() => {
                let (cart, owner) = self.carts[self.rng.random_range(0..self.carts.len())].clone();
                let (status, order) = self
                    .call(Method::POST, &format!("/carts/{cart}/checkout"), None)
                    .await;
                if status == StatusCode::CREATED {
                    self.order(&order);
                    self.orders.push(order["id"].as_str().unwrap().into());
                    let customer = &self.customers[owner].0;
                    self.ledger.insert(
                        ("shopping_carts", cart),
                        Some(format!("{customer}|converted")),
                    );
                }
            }
            8 => {
                let i = live[self.rng.random_range(0..live.len())];
                let path = format!("/customers/{}", self.customers[i].0);
                let (status, _) = self.call(Method::DELETE, &path, None).await;
                if status == StatusCode::NO_CONTENT {
                    self.customers[i].1 = true;
                    let key = ("customers", self.customers[i].0.clone());
                    let projection = self.ledger[&key]
                        .clone()
                        .unwrap()
                        .replace("|false", "|true");
                    self.ledger.insert(key, Some(projection));
                    // Its open carts are abandoned with it.
                    let customer = self.customers[i].0.clone();
                    for (cart, _) in self.carts.iter().filter(|(_, owner)| *owner == i) {
                        let key = ("shopping_carts", cart.clone());
                        if self.ledger[&key].as_deref() == Some(format!("{customer}|open").as_str())
                        {
                            self.ledger
                                .insert(key, Some(format!("{customer}|abandoned")));
                        }
                    }
                }
            }
            _ if !self.orders.is_empty() => {
                let order = self.orders[self.rng.random_range(0..self.orders.len())].clone();
                let body = json!({ "status": "paid" });
                let (status, body) = self
                    .call(Method::PATCH, &format!("/orders/{order}"), Some(body))
                    .await;
                if status == StatusCode::OK {
                    self.order(&body);
                }
            }
            _ => {}
        }
    }
}

/// A writer with plain SQL, wherever the catalog says the tenant lives: seeded customers of
/// its own (one in fifty), and rows it adds to them, in all six tables.
struct SqlWriter {
    tenant: TenantId,
    /// The epoch of the place its connection is to.
    epoch: i64,
    /// Every change it committed: the key, its step number, the epoch of the place.
    history: History,
    rng: StdRng,
    ledger: Ledger,
    /// (customer, its address ids, its order, the order's item skus, carts it made with skus)
    owned: Vec<Owned>,
    n: usize,
}

#[derive(Clone)]
struct Owned {
    customer: String,
    email: String,
    addresses: Vec<String>,
    order: Option<String>,
    skus: Vec<String>,
    carts: Vec<(String, Vec<String>)>,
}

/// SQLSTATE of a tenant whose writes are paused, or refused at its old place.
const PAUSED: &str = "55P03";
/// SQLSTATE of a transaction chosen to break a deadlock (rolled back).
const DEADLOCK: &str = "40P01";
/// SQLSTATE of a connection ended by the server (its database dropped `WITH (FORCE)`).
const TERMINATED: &str = "57P01";

impl SqlWriter {
    /// One random write in one transaction; `Err` when the tenant's writes are paused or
    /// refused here (nothing was written), so that the caller looks up its place again.
    async fn step(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.n += 1;
        let i = self.rng.random_range(0..self.owned.len());
        // What it knows of its rows changes with the transaction, or not at all.
        let before = self.owned[i].clone();
        let outcome = self.try_step(conn, i).await;
        if outcome.is_err() {
            self.owned[i] = before;
        }
        outcome
    }

    async fn try_step(&mut self, conn: &mut PgConnection, i: usize) -> Result<(), sqlx::Error> {
        let n = self.n;
        let tenant = self.tenant.to_string();
        let choice = self.rng.random_range(0..10);
        let mut tx = conn.begin().await?;
        let project = |table: &str| {
            let (_, key, projection) = PROJECTIONS.iter().find(|p| p.0 == table).unwrap();
            format!("RETURNING {key}, {projection}")
        };
        let o = &mut self.owned[i];
        let mut changes: Vec<((&'static str, String), Option<String>)> = Vec::new();
        let one = |row: sqlx::postgres::PgRow| -> (String, String) { (row.get(0), row.get(1)) };
        match choice {
            0 => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE customers SET first_name = $3 WHERE tenant_id = $1 AND id = $2::uuid {}",
                    project("customers")
                )))
                .bind(&tenant)
                .bind(&o.customer)
                .bind(format!("d{n}"))
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                changes.push((("customers", k), Some(p)));
            }
            1 => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO customer_addresses (tenant_id, customer_id, kind, line1, city, country)
                     VALUES ($1, $2::uuid, 'billing', $3, 'Nice', 'FR') {}",
                    project("customer_addresses")
                )))
                .bind(&tenant)
                .bind(&o.customer)
                .bind(format!("{n} Quai"))
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                o.addresses.push(k.clone());
                changes.push((("customer_addresses", k), Some(p)));
            }
            2 if !o.addresses.is_empty() => {
                let a = o.addresses[self.rng.random_range(0..o.addresses.len())].clone();
                let row = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE customer_addresses SET line1 = $3 WHERE tenant_id = $1 AND id = $2::uuid {}",
                    project("customer_addresses")
                )))
                .bind(&tenant)
                .bind(&a)
                .bind(format!("{n} Avenue"))
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                changes.push((("customer_addresses", k), Some(p)));
            }
            3 if !o.addresses.is_empty() => {
                let a = o
                    .addresses
                    .swap_remove(self.rng.random_range(0..o.addresses.len()));
                sqlx::query(
                    "DELETE FROM customer_addresses WHERE tenant_id = $1 AND id = $2::uuid",
                )
                .bind(&tenant)
                .bind(&a)
                .execute(&mut *tx)
                .await?;
                changes.push((("customer_addresses", a), None));
            }
            4 if o.order.is_some() => {
                let order = o.order.clone().unwrap();
                let status = ["paid", "shipped", "refunded"][n % 3];
                let row = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE orders SET status = $3 WHERE tenant_id = $1 AND id = $2::uuid {}",
                    project("orders")
                )))
                .bind(&tenant)
                .bind(&order)
                .bind(status)
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                changes.push((("orders", k), Some(p)));
            }
            5 if o.order.is_some() => {
                // An item more, or one fewer, or a quantity changed.
                let order = o.order.clone().unwrap();
                let pick = self.rng.random_range(0..3);
                if pick == 0 || o.skus.is_empty() {
                    let row = sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO order_items (tenant_id, order_id, sku, name, quantity, unit_price_cents)
                         VALUES ($1, $2::uuid, $3, 'Extra', 1, 99) {}",
                        project("order_items")
                    )))
                    .bind(&tenant)
                    .bind(&order)
                    .bind(format!("D-{n}"))
                    .fetch_one(&mut *tx)
                    .await?;
                    let (k, p) = one(row);
                    o.skus.push(format!("D-{n}"));
                    changes.push((("order_items", k), Some(p)));
                } else {
                    let s = self.rng.random_range(0..o.skus.len());
                    if pick == 1 {
                        let sku = o.skus.swap_remove(s);
                        sqlx::query("DELETE FROM order_items WHERE tenant_id = $1 AND order_id = $2::uuid AND sku = $3")
                            .bind(&tenant)
                            .bind(&order)
                            .bind(&sku)
                            .execute(&mut *tx)
                            .await?;
                        changes.push((("order_items", format!("{order}/{sku}")), None));
                    } else {
                        let row = sqlx::query(AssertSqlSafe(format!(
                            "UPDATE order_items SET quantity = quantity + 1
                             WHERE tenant_id = $1 AND order_id = $2::uuid AND sku = $3 {}",
                            project("order_items")
                        )))
                        .bind(&tenant)
                        .bind(&order)
                        .bind(&o.skus[s])
                        .fetch_one(&mut *tx)
                        .await?;
                        let (k, p) = one(row);
                        changes.push((("order_items", k), Some(p)));
                    }
                }
            }
            6 if o.order.is_some() && o.skus.is_empty() => {
                // An order without items goes, with nothing to cascade to.
                let order = o.order.take().unwrap();
                sqlx::query("DELETE FROM orders WHERE tenant_id = $1 AND id = $2::uuid")
                    .bind(&tenant)
                    .bind(&order)
                    .execute(&mut *tx)
                    .await?;
                changes.push((("orders", order), None));
            }
            7 => {
                // A cart with an item.
                let cart = uuid::Uuid::new_v4().to_string();
                let row = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO shopping_carts (id, tenant_id, customer_id) VALUES ($2::uuid, $1, $3::uuid) {}",
                    project("shopping_carts")
                )))
                .bind(&tenant)
                .bind(&cart)
                .bind(&o.customer)
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                changes.push((("shopping_carts", k), Some(p)));
                let row = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO cart_items (tenant_id, cart_id, sku, quantity, unit_price_cents)
                     VALUES ($1, $2::uuid, 'C-1', 2, 300) {}",
                    project("cart_items")
                )))
                .bind(&tenant)
                .bind(&cart)
                .fetch_one(&mut *tx)
                .await?;
                let (k, p) = one(row);
                changes.push((("cart_items", k), Some(p)));
                o.carts.push((cart, vec!["C-1".into()]));
            }
            8 if !o.carts.is_empty() => {
                // A cart's item changed, or the cart and its items deleted.
                let c = self.rng.random_range(0..o.carts.len());
                if n.is_multiple_of(2) && !o.carts[c].1.is_empty() {
                    let cart = o.carts[c].0.clone();
                    let row = sqlx::query(AssertSqlSafe(format!(
                        "UPDATE cart_items SET quantity = quantity + 1 WHERE tenant_id = $1 AND cart_id = $2::uuid AND sku = 'C-1' {}",
                        project("cart_items")
                    )))
                    .bind(&tenant)
                    .bind(&cart)
                    .fetch_one(&mut *tx)
                    .await?;
                    let (k, p) = one(row);
                    changes.push((("cart_items", k), Some(p)));
                } else {
                    let (cart, skus) = o.carts.swap_remove(c);
                    sqlx::query(
                        "DELETE FROM shopping_carts WHERE tenant_id = $1 AND id = $2::uuid",
                    )
                    .bind(&tenant)
                    .bind(&cart)
                    .execute(&mut *tx)
                    .await?;
                    for sku in skus {
                        changes.push((("cart_items", format!("{cart}/{sku}")), None));
                    }
                    changes.push((("shopping_carts", cart), None));
                }
            }
            _ => {
                // The customer's email changes back and forth (a unique key, per tenant).
                let email = if o.email.contains("+") {
                    o.email.replace('+', "")
                } else {
                    o.email.replace('@', "+@")
                };
                let row = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE customers SET email = $3 WHERE tenant_id = $1 AND id = $2::uuid {}",
                    project("customers")
                )))
                .bind(&tenant)
                .bind(&o.customer)
                .bind(&email)
                .fetch_one(&mut *tx)
                .await?;
                o.email = email;
                let (k, p) = one(row);
                changes.push((("customers", k), Some(p)));
            }
        }
        tx.commit().await?;
        for (key, _) in &changes {
            self.history
                .push((key.clone(), n, self.epoch, chrono::Utc::now()));
        }
        self.ledger.extend(changes);
        Ok(())
    }
}

/// Runs the writers until `stop`; returns their ledgers. Each writer stops after its step in
/// flight, so a returned ledger holds everything its writer committed.
async fn write_until(
    fleet: Arc<Fleet>,
    store: Vec<StoreWriter>,
    mut sql: SqlWriter,
    stop: Arc<AtomicBool>,
) -> (Vec<StoreWriter>, SqlWriter) {
    let stores: Vec<_> = store
        .into_iter()
        .map(|mut w| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    w.step().await;
                }
                w
            })
        })
        .collect();
    let direct = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut tenant = fleet.catalog().tenant(sql.tenant).await.unwrap();
            let mut conn = connect_to(&fleet, &tenant).await;
            sql.epoch = tenant.epoch;
            while !stop.load(Ordering::SeqCst) {
                let Err(e) = sql.step(&mut conn).await else {
                    continue;
                };
                // Nothing was written: paused for a switch, refused at the old place, chosen to
                // break a deadlock, or the connection closed by the removal of the place it was
                // in. Look again.
                let code = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned());
                let gone = match code.as_deref() {
                    // A deadlock with the mover setting up capture rolls back, like a pause.
                    Some(PAUSED | DEADLOCK) => false,
                    Some(TERMINATED) | None
                        if matches!(
                            e,
                            sqlx::Error::Database(_)
                                | sqlx::Error::Io(_)
                                | sqlx::Error::Protocol(_)
                        ) =>
                    {
                        true
                    }
                    _ => panic!("direct writer: {e}"),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = fleet.catalog().tenant(sql.tenant).await.unwrap();
                if gone || now.epoch != tenant.epoch {
                    tenant = now;
                    conn = connect_to(&fleet, &tenant).await;
                    sql.epoch = tenant.epoch;
                }
            }
            sql
        })
    };
    let mut done = Vec::new();
    for w in stores {
        done.push(w.await.unwrap());
    }
    (done, direct.await.unwrap())
}

/// The seeded rows with every writer's ledger applied, against the tenant's rows at its place.
async fn check(
    fleet: &Fleet,
    tenant: TenantId,
    seeded: &Ledger,
    store: &[StoreWriter],
    sql: &SqlWriter,
    phase: &str,
) {
    let mut expected = seeded.clone();
    for ledger in store.iter().map(|w| &w.ledger).chain([&sql.ledger]) {
        for (key, value) in ledger {
            expected.insert(key.clone(), value.clone());
        }
    }
    expected.retain(|_, v| v.is_some());
    let actual = rows(fleet, tenant).await;
    if actual != expected {
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(k, v)| actual.get(*k) != Some(*v))
            .map(|(k, v)| {
                let history: Vec<_> = sql.history.iter().filter(|h| &h.0 == k).map(|h| (h.1, h.2, h.3.to_rfc3339())).collect();
                format!("{k:?}: expected {v:?}, found {:?}; the direct writer's (step, epoch): {history:?}", actual.get(k))
            })
            .chain(
                actual
                    .iter()
                    .filter(|(k, _)| !expected.contains_key(*k))
                    .map(|(k, v)| format!("{k:?}: not expected, found {v:?}")),
            )
            .take(10)
            .collect();
        panic!(
            "{phase}: {} rows differ from what the writers committed:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
    let writes: usize = store.iter().map(|w| w.ledger.len()).sum::<usize>() + sql.ledger.len();
    eprintln!(
        "{phase}: {} rows as committed ({writes} rows written by the writers)",
        actual.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_big_tenant_moves_rolls_back_and_moves_again_under_writes_and_every_write_lands_once() {
    let Some(fleet) = Fleet::postgres_two_shards().await else {
        return;
    };
    let fleet = Arc::new(fleet);
    let big = fleet.tenant("big", Isolation::Shared).await;
    let neighbour = fleet.tenant("neighbour", Isolation::Shared).await;
    let n = customers_env();
    seed(&fleet, &big, n).await;
    seed(&fleet, &neighbour, 500).await;
    let seeded = rows(&fleet, big.id).await;
    let neighbours = rows(&fleet, neighbour.id).await;

    let router = fleet.router(RouterOptions {
        placement_ttl: Duration::from_millis(200),
        hold: Duration::from_secs(60),
        ..RouterOptions::default()
    });
    let routes = Storefront::new(router.clone(), None, None).routes();
    let mut store: Vec<StoreWriter> = (0..2)
        .map(|i| StoreWriter {
            routes: routes.clone(),
            slug: big.slug.clone(),
            rng: StdRng::seed_from_u64(i),
            ledger: Ledger::new(),
            customers: Vec::new(),
            carts: Vec::new(),
            orders: Vec::new(),
            n: 0,
        })
        .collect();
    let mut owned = Vec::new();
    let mut conn = connect_to(&fleet, &big).await;
    for g in (1..=n).step_by(50) {
        let row = sqlx::query(
            "SELECT c.id::text, a.id::text, o.id::text FROM customers c
             JOIN customer_addresses a ON a.customer_id = c.id JOIN orders o ON o.customer_id = c.id
             WHERE c.tenant_id = $1 AND c.email = $2",
        )
        .bind(big.id.to_string())
        .bind(format!("c{g}@shop.example"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        owned.push(Owned {
            customer: row.get(0),
            email: format!("c{g}@shop.example"),
            addresses: vec![row.get(1)],
            order: Some(row.get(2)),
            skus: vec!["SKU-1".into()],
            carts: Vec::new(),
        });
    }
    drop(conn);
    let mut sql = SqlWriter {
        tenant: big.id,
        rng: StdRng::seed_from_u64(99),
        epoch: 0,
        history: Vec::new(),
        ledger: Ledger::new(),
        owned,
        n: 0,
    };

    let orch = &fleet.orch;
    for phase in ["moved", "rolled back", "moved again", "completed"] {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = tokio::spawn(write_until(
            Arc::clone(&fleet),
            store,
            sql,
            Arc::clone(&stop),
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, op) = match phase {
            "rolled back" => orch.request_move_rollback("big", "test").await,
            "completed" => orch.request_move_complete("big", "test").await,
            _ => {
                orch.request_move("big", Isolation::Database, Some("eu-west-2"), "test")
                    .await
            }
        }
        .unwrap();
        let op = orch.run(op.id, &NoProgress).await.unwrap();
        assert_eq!(op.state.to_string(), "succeeded", "{phase}: {op:?}");
        let took: Vec<String> = op
            .steps
            .iter()
            .filter_map(|s| {
                let (from, to) = (s.started_at?, s.finished_at?);
                Some(format!(
                    "{} {} ms (from {})",
                    s.name,
                    (to - from).num_milliseconds(),
                    from.to_rfc3339()
                ))
            })
            .collect();
        eprintln!("{phase}: {}", took.join(", "));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::SeqCst);
        (store, sql) = writers.await.unwrap();
        let epoch = fleet.catalog().tenant(big.id).await.unwrap().epoch;
        eprintln!("{phase}: epoch {epoch}");
        check(&fleet, big.id, &seeded, &store, &sql, phase).await;
        assert_eq!(
            rows(&fleet, neighbour.id).await,
            neighbours,
            "{phase}: the neighbour changed"
        );
    }
    let at = fleet.catalog().tenant(big.id).await.unwrap();
    assert_eq!(
        (at.isolation, at.shard.as_str()),
        (Isolation::Database, "eu-west-2")
    );
    // The shared database keeps none of its rows.
    let mut shared = connect_to(&fleet, &neighbour).await;
    for (table, _, _) in PROJECTIONS {
        let left: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        )))
        .bind(big.id.to_string())
        .fetch_one(&mut shared)
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    router.close().await;
}
