//! The storefront: the sample tenant application (`examples/storefront`) as an HTTP service.
//! Customers with addresses, carts with items, orders with items, and a small job queue; the
//! tenant of each request is its `Host` (one of the tenant's domains) or its `X-Tenant` header
//! (an id or a slug), and every read and write goes through the tenant router, so the service
//! neither knows nor cares whether a tenant lives in the shared database, a schema or a
//! database of its own. `tenantry storefront` serves it; a dedicated tenant's compute runs it
//! pinned to its tenant.
//!
//! # Layout
//! - [`store`]: the data access, on router transactions.
//! - [`jobs`]: the per-tenant job queue in Redis.
//! - `dialect`: one query text for PostgreSQL and SQLite.
//! - [`error`]: errors and their HTTP answers.

mod dialect;
pub mod error;
pub mod jobs;
pub mod store;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router as Routes};
use error::{Result, StoreError};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use store::{
    Address, Cart, CartItem, Customer, CustomerChanges, NewAddress, NewCustomer, Order, Summary,
};
use tenantry_router::{Router, RouterError, TenantKey, TenantTx};

/// The header that names a request's tenant by id or slug.
pub const TENANT_HEADER: &str = "x-tenant";

/// The service's state.
pub struct Storefront {
    router: Router,
    redis: Option<redis::aio::ConnectionManager>,
    pinned: Option<TenantKey>,
}

impl Storefront {
    /// A storefront over `router`; with `redis`, it serves the job queue; with `pinned`, it
    /// serves that tenant only (a dedicated tenant's own compute), whatever a request names.
    pub fn new(
        router: Router,
        redis: Option<redis::aio::ConnectionManager>,
        pinned: Option<TenantKey>,
    ) -> Self {
        Self {
            router,
            redis,
            pinned,
        }
    }

    /// The HTTP routes.
    pub fn routes(self) -> Routes {
        Routes::new()
            .route("/health", get(|| async { "ok" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/customers", post(add_customer).get(customers))
            .route(
                "/customers/{id}",
                get(customer).patch(change_customer).delete(delete_customer),
            )
            .route(
                "/customers/{id}/addresses",
                post(add_address).get(addresses),
            )
            .route("/carts", post(open_cart))
            .route("/carts/{id}", get(cart))
            .route("/carts/{id}/items", put(put_cart_item))
            .route("/carts/{id}/items/{sku}", delete(remove_cart_item))
            .route("/carts/{id}/checkout", post(checkout))
            .route("/orders", get(orders))
            .route("/orders/{id}", get(order).patch(set_order_status))
            .route("/summary", get(summary))
            .route("/jobs/{queue}", post(push_job))
            .route("/jobs/{queue}/take", post(take_job))
            .with_state(Arc::new(self))
    }

    fn key(&self, headers: &HeaderMap) -> Result<TenantKey> {
        if let Some(pinned) = &self.pinned {
            return Ok(pinned.clone());
        }
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        TenantKey::from_request(text(header::HOST.as_str()), text(TENANT_HEADER))
            .ok_or(StoreError::Router(RouterError::NoTenant))
    }

    /// Runs `work` in a transaction of the request's tenant.
    async fn run<T, F>(&self, headers: &HeaderMap, work: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t mut TenantTx) -> BoxFuture<'t, Result<T>>,
    {
        let key = self.key(headers)?;
        self.router.transaction(&key, work).await
    }
}

type AppState = State<Arc<Storefront>>;

/// Runs `$call` (a `store` function taking the transaction and the cloned captures) in the
/// request's tenant's transaction.
macro_rules! tenant_tx {
    ($state:expr, $headers:expr, [$($capture:ident),*], |$tx:ident| $call:expr) => {
        $state
            .run(&$headers, move |$tx| {
                $(let $capture = $capture.clone();)*
                Box::pin(async move { $call.await })
            })
            .await
    };
}

#[derive(Deserialize)]
struct Limit {
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn add_customer(
    State(s): AppState,
    headers: HeaderMap,
    Json(new): Json<NewCustomer>,
) -> Result<(StatusCode, Json<Customer>)> {
    let made = tenant_tx!(s, headers, [new], |tx| store::add_customer(tx, &new))?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn customers(
    State(s): AppState,
    headers: HeaderMap,
    Query(Limit { limit }): Query<Limit>,
) -> Result<Json<Vec<Customer>>> {
    Ok(Json(tenant_tx!(s, headers, [], |tx| store::customers(
        tx,
        limit.clamp(1, 1000)
    ))?))
}

async fn customer(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Customer>> {
    let id = store::parse_id(&id, "customer")?;
    Ok(Json(tenant_tx!(s, headers, [id], |tx| store::customer(
        tx, &id
    ))?))
}

async fn change_customer(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(changes): Json<CustomerChanges>,
) -> Result<Json<Customer>> {
    let id = store::parse_id(&id, "customer")?;
    Ok(Json(tenant_tx!(s, headers, [id, changes], |tx| {
        store::change_customer(tx, &id, &changes)
    })?))
}

async fn delete_customer(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = store::parse_id(&id, "customer")?;
    tenant_tx!(s, headers, [id], |tx| store::delete_customer(tx, &id))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_address(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(new): Json<NewAddress>,
) -> Result<(StatusCode, Json<Address>)> {
    let id = store::parse_id(&id, "customer")?;
    let made = tenant_tx!(s, headers, [id, new], |tx| store::add_address(
        tx, &id, &new
    ))?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn addresses(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<Address>>> {
    let id = store::parse_id(&id, "customer")?;
    Ok(Json(tenant_tx!(s, headers, [id], |tx| store::addresses(
        tx, &id
    ))?))
}

#[derive(Clone, Default, Deserialize)]
struct NewCart {
    #[serde(default)]
    customer_id: Option<String>,
}

async fn open_cart(
    State(s): AppState,
    headers: HeaderMap,
    body: Option<Json<NewCart>>,
) -> Result<(StatusCode, Json<Cart>)> {
    let customer = match body.map(|Json(b)| b).unwrap_or_default().customer_id {
        Some(id) => Some(store::parse_id(&id, "customer")?),
        None => None,
    };
    let made = tenant_tx!(s, headers, [customer], |tx| store::open_cart(
        tx,
        customer.as_deref()
    ))?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn cart(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Cart>> {
    let id = store::parse_id(&id, "cart")?;
    Ok(Json(tenant_tx!(s, headers, [id], |tx| store::cart(
        tx, &id
    ))?))
}

async fn put_cart_item(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(item): Json<CartItem>,
) -> Result<Json<Cart>> {
    let id = store::parse_id(&id, "cart")?;
    Ok(Json(tenant_tx!(s, headers, [id, item], |tx| {
        store::put_cart_item(tx, &id, &item)
    })?))
}

async fn remove_cart_item(
    State(s): AppState,
    headers: HeaderMap,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Json<Cart>> {
    let id = store::parse_id(&id, "cart")?;
    Ok(Json(tenant_tx!(s, headers, [id, sku], |tx| {
        store::remove_cart_item(tx, &id, &sku)
    })?))
}

#[derive(Clone, Deserialize)]
struct Checkout {
    #[serde(default = "default_currency")]
    currency: String,
}

fn default_currency() -> String {
    "USD".into()
}

async fn checkout(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<Checkout>>,
) -> Result<(StatusCode, Json<Order>)> {
    let id = store::parse_id(&id, "cart")?;
    let currency = body.map_or_else(default_currency, |Json(b)| b.currency);
    let made = tenant_tx!(s, headers, [id, currency], |tx| store::checkout(
        tx, &id, &currency
    ))?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn orders(
    State(s): AppState,
    headers: HeaderMap,
    Query(Limit { limit }): Query<Limit>,
) -> Result<Json<Vec<Order>>> {
    Ok(Json(tenant_tx!(s, headers, [], |tx| store::orders(
        tx,
        limit.clamp(1, 1000)
    ))?))
}

async fn order(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Order>> {
    let id = store::parse_id(&id, "order")?;
    Ok(Json(tenant_tx!(s, headers, [id], |tx| store::order(
        tx, &id
    ))?))
}

#[derive(Clone, Deserialize)]
struct StatusChange {
    status: String,
}

async fn set_order_status(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(StatusChange { status }): Json<StatusChange>,
) -> Result<Json<Order>> {
    let id = store::parse_id(&id, "order")?;
    Ok(Json(tenant_tx!(s, headers, [id, status], |tx| {
        store::set_order_status(tx, &id, &status)
    })?))
}

async fn summary(State(s): AppState, headers: HeaderMap) -> Result<Json<Summary>> {
    Ok(Json(tenant_tx!(s, headers, [], |tx| store::summary(tx))?))
}

/// The request's tenant's Redis, and the key of `queue` under its prefix.
async fn queue(
    s: &Storefront,
    headers: &HeaderMap,
    queue: &str,
) -> Result<(redis::aio::ConnectionManager, String)> {
    let redis = s.redis.clone().ok_or(StoreError::NoRedis)?;
    let tenant = s.router.tenant(&s.key(headers)?).await?;
    Ok((redis, jobs::queue_key(&tenant.id.key_prefix(), queue)?))
}

async fn push_job(
    State(s): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(payload): Json<serde_json::Value>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let (mut redis, key) = queue(&s, &headers, &name).await?;
    let waiting = jobs::push(&mut redis, &key, &payload.to_string()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "waiting": waiting })),
    ))
}

async fn take_job(
    State(s): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let (mut redis, key) = queue(&s, &headers, &name).await?;
    let job = jobs::take(&mut redis, &key).await?;
    let job = job
        .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
        .unwrap_or(serde_json::Value::Null);
    Ok(Json(serde_json::json!({ "job": job })))
}
