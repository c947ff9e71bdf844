//! The storefront's data access: customers and addresses, carts and items, orders and items —
//! every statement on a transaction the router scoped to the tenant.
//!
//! Every row is written with the transaction's tenant id and every query filters by it. Where
//! the tenant lives on PostgreSQL the database enforces the same wall (row-level security, its
//! own schema or database), so the filter is a second wall there and the only one in SQLite's
//! shared file.

use crate::dialect::{on, sql};
use crate::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use tenantry_router::TenantTx;
use uuid::Uuid;

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    /// Soft-deleted: kept for its orders, its email still reserved.
    pub deleted: bool,
}

/// A customer to add.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewCustomer {
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// Changes to a customer; absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CustomerChanges {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A customer's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Address {
    pub id: String,
    pub customer_id: String,
    pub kind: String,
    pub line1: String,
    pub city: String,
    pub country: String,
    pub is_default: bool,
}

/// An address to add.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAddress {
    pub kind: String,
    pub line1: String,
    pub city: String,
    pub country: String,
    #[serde(default)]
    pub is_default: bool,
}

/// A shopping cart and its items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: String,
    pub items: Vec<CartItem>,
}

#[derive(sqlx::FromRow)]
struct CartRow {
    id: String,
    customer_id: Option<String>,
    status: String,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CartItem {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// An order and its items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub order_number: i64,
    pub status: String,
    pub currency: String,
    pub total_cents: i64,
    pub items: Vec<OrderItem>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    customer_id: String,
    order_number: i64,
    status: String,
    currency: String,
    total_cents: i64,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OrderItem {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// How many rows of each table the tenant has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub customers: i64,
    pub customer_addresses: i64,
    pub shopping_carts: i64,
    pub cart_items: i64,
    pub orders: i64,
    pub order_items: i64,
}

/// The tables of [`Summary`], in its field order.
pub const TABLES: [&str; 6] = [
    "customers",
    "customer_addresses",
    "shopping_carts",
    "cart_items",
    "orders",
    "order_items",
];

/// A path's id, refused unless it is a UUID (so no text reaches a `uuid` column).
pub fn parse_id(value: &str, what: &'static str) -> Result<String> {
    Uuid::parse_str(value)
        .map(|id| id.to_string())
        .map_err(|_| StoreError::NotFound(what))
}

pub async fn add_customer(tx: &mut TenantTx, new: &NewCustomer) -> Result<Customer> {
    let email = new.email.trim().to_lowercase();
    if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(StoreError::Invalid(format!(
            "{:?} is not an email address",
            new.email
        )));
    }
    let (tenant, id, engine) = (
        tx.tenant_id().to_string(),
        Uuid::new_v4().to_string(),
        tx.engine(),
    );
    let statement = sql(
        engine,
        "INSERT INTO customers (id, tenant_id, email, first_name, last_name, phone)
         VALUES ($1::uuid, $2, $3, $4, $5, $6)",
    );
    on!(tx, |c| sqlx::query(statement)
        .bind(&id)
        .bind(&tenant)
        .bind(&email)
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(&new.phone)
        .execute(c)
        .await
        .map(drop))?;
    customer(tx, &id).await
}

pub async fn customers(tx: &mut TenantTx, limit: i64) -> Result<Vec<Customer>> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "SELECT id::text, email, first_name, last_name, phone,
                                        deleted_at IS NOT NULL AS deleted
                                 FROM customers WHERE tenant_id = $1 ORDER BY email LIMIT $2",
    );
    Ok(on!(tx, |c| sqlx::query_as(statement)
        .bind(&tenant)
        .bind(limit)
        .fetch_all(c)
        .await)?)
}

pub async fn customer(tx: &mut TenantTx, id: &str) -> Result<Customer> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "SELECT id::text, email, first_name, last_name, phone, deleted_at IS NOT NULL AS deleted
         FROM customers WHERE tenant_id = $1 AND id = $2::uuid",
    );
    on!(tx, |c| sqlx::query_as(statement)
        .bind(&tenant)
        .bind(id)
        .fetch_optional(c)
        .await)?
    .ok_or(StoreError::NotFound("customer"))
}

pub async fn change_customer(
    tx: &mut TenantTx,
    id: &str,
    changes: &CustomerChanges,
) -> Result<Customer> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "UPDATE customers SET first_name = COALESCE($3, first_name),
                              last_name = COALESCE($4, last_name),
                              phone = COALESCE($5, phone),
                              updated_at = {now}
         WHERE tenant_id = $1 AND id = $2::uuid",
    );
    let changed = on!(tx, |c| sqlx::query(statement)
        .bind(&tenant)
        .bind(id)
        .bind(&changes.first_name)
        .bind(&changes.last_name)
        .bind(&changes.phone)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(StoreError::NotFound("customer"));
    }
    customer(tx, id).await
}

/// Soft-deletes a customer (orders keep pointing at it); its open carts are abandoned.
pub async fn delete_customer(tx: &mut TenantTx, id: &str) -> Result<()> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "UPDATE customers SET deleted_at = {now}, updated_at = {now}
         WHERE tenant_id = $1 AND id = $2::uuid AND deleted_at IS NULL",
    );
    let changed = on!(tx, |c| sqlx::query(statement)
        .bind(&tenant)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(StoreError::NotFound("customer"));
    }
    let abandon = sql(
        engine,
        "UPDATE shopping_carts SET status = 'abandoned', updated_at = {now}
         WHERE tenant_id = $1 AND customer_id = $2::uuid AND status = 'open'",
    );
    on!(tx, |c| sqlx::query(abandon)
        .bind(&tenant)
        .bind(id)
        .execute(c)
        .await
        .map(drop))?;
    Ok(())
}

pub async fn add_address(
    tx: &mut TenantTx,
    customer_id: &str,
    new: &NewAddress,
) -> Result<Address> {
    customer(tx, customer_id).await?;
    let (tenant, id, engine) = (
        tx.tenant_id().to_string(),
        Uuid::new_v4().to_string(),
        tx.engine(),
    );
    if new.is_default {
        let clear = sql(
            engine,
            "UPDATE customer_addresses SET is_default = false, updated_at = {now}
             WHERE tenant_id = $1 AND customer_id = $2::uuid AND kind = $3 AND is_default",
        );
        on!(tx, |c| sqlx::query(clear)
            .bind(&tenant)
            .bind(customer_id)
            .bind(&new.kind)
            .execute(c)
            .await
            .map(drop))?;
    }
    let statement = sql(
        engine,
        "INSERT INTO customer_addresses (id, tenant_id, customer_id, kind, line1, city, country, is_default)
         VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6, $7, $8)",
    );
    on!(tx, |c| sqlx::query(statement)
        .bind(&id)
        .bind(&tenant)
        .bind(customer_id)
        .bind(&new.kind)
        .bind(&new.line1)
        .bind(&new.city)
        .bind(&new.country)
        .bind(new.is_default)
        .execute(c)
        .await
        .map(drop))?;
    Ok(Address {
        id,
        customer_id: customer_id.to_owned(),
        kind: new.kind.clone(),
        line1: new.line1.clone(),
        city: new.city.clone(),
        country: new.country.clone(),
        is_default: new.is_default,
    })
}

pub async fn addresses(tx: &mut TenantTx, customer_id: &str) -> Result<Vec<Address>> {
    customer(tx, customer_id).await?;
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "SELECT id::text, customer_id::text, kind, line1, city, country::text, is_default
         FROM customer_addresses WHERE tenant_id = $1 AND customer_id = $2::uuid ORDER BY id",
    );
    Ok(on!(tx, |c| sqlx::query_as(statement)
        .bind(&tenant)
        .bind(customer_id)
        .fetch_all(c)
        .await)?)
}

/// Opens a cart, a guest's when `customer_id` is absent.
pub async fn open_cart(tx: &mut TenantTx, customer_id: Option<&str>) -> Result<Cart> {
    if let Some(customer_id) = customer_id {
        let found = customer(tx, customer_id).await?;
        if found.deleted {
            return Err(StoreError::Invalid("the customer is deleted".into()));
        }
    }
    let (tenant, id, engine) = (
        tx.tenant_id().to_string(),
        Uuid::new_v4().to_string(),
        tx.engine(),
    );
    let statement = sql(
        engine,
        "INSERT INTO shopping_carts (id, tenant_id, customer_id) VALUES ($1::uuid, $2, $3::uuid)",
    );
    on!(tx, |c| sqlx::query(statement)
        .bind(&id)
        .bind(&tenant)
        .bind(customer_id)
        .execute(c)
        .await
        .map(drop))?;
    cart(tx, &id).await
}

pub async fn cart(tx: &mut TenantTx, id: &str) -> Result<Cart> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let head = sql(
        engine,
        "SELECT id::text, customer_id::text, status FROM shopping_carts
         WHERE tenant_id = $1 AND id = $2::uuid",
    );
    let row: CartRow = on!(tx, |c| sqlx::query_as(head)
        .bind(&tenant)
        .bind(id)
        .fetch_optional(c)
        .await)?
    .ok_or(StoreError::NotFound("cart"))?;
    let lines = sql(
        engine,
        "SELECT sku, quantity::bigint, unit_price_cents FROM cart_items
         WHERE tenant_id = $1 AND cart_id = $2::uuid ORDER BY sku",
    );
    let items = on!(tx, |c| sqlx::query_as(lines)
        .bind(&tenant)
        .bind(id)
        .fetch_all(c)
        .await)?;
    Ok(Cart {
        id: row.id,
        customer_id: row.customer_id,
        status: row.status,
        items,
    })
}

async fn open_cart_of(tx: &mut TenantTx, id: &str) -> Result<Cart> {
    let found = cart(tx, id).await?;
    if found.status != "open" {
        return Err(StoreError::Conflict(format!(
            "the cart is {}",
            found.status
        )));
    }
    Ok(found)
}

/// Sets a cart line (adding it, or replacing its quantity and price).
pub async fn put_cart_item(tx: &mut TenantTx, cart_id: &str, item: &CartItem) -> Result<Cart> {
    if item.quantity <= 0 || item.unit_price_cents < 0 || item.sku.trim().is_empty() {
        return Err(StoreError::Invalid(
            "a cart line needs a sku, a quantity above 0 and a price of 0 or more".into(),
        ));
    }
    open_cart_of(tx, cart_id).await?;
    let (tenant, id, engine) = (
        tx.tenant_id().to_string(),
        Uuid::new_v4().to_string(),
        tx.engine(),
    );
    let statement = sql(
        engine,
        "INSERT INTO cart_items (id, tenant_id, cart_id, sku, quantity, unit_price_cents)
         VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6)
         ON CONFLICT (tenant_id, cart_id, sku) DO UPDATE
         SET quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents,
             updated_at = {now}",
    );
    on!(tx, |c| sqlx::query(statement)
        .bind(&id)
        .bind(&tenant)
        .bind(cart_id)
        .bind(&item.sku)
        .bind(item.quantity as i32)
        .bind(item.unit_price_cents)
        .execute(c)
        .await
        .map(drop))?;
    cart(tx, cart_id).await
}

pub async fn remove_cart_item(tx: &mut TenantTx, cart_id: &str, sku: &str) -> Result<Cart> {
    open_cart_of(tx, cart_id).await?;
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "DELETE FROM cart_items WHERE tenant_id = $1 AND cart_id = $2::uuid AND sku = $3",
    );
    let removed = on!(tx, |c| sqlx::query(statement)
        .bind(&tenant)
        .bind(cart_id)
        .bind(sku)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(StoreError::NotFound("cart line"));
    }
    cart(tx, cart_id).await
}

/// Turns a customer's open cart into an order with the next order number.
pub async fn checkout(tx: &mut TenantTx, cart_id: &str, currency: &str) -> Result<Order> {
    let cart = open_cart_of(tx, cart_id).await?;
    let Some(customer_id) = cart.customer_id.clone() else {
        return Err(StoreError::Invalid(
            "a guest cart cannot be checked out: give it a customer".into(),
        ));
    };
    if cart.items.is_empty() {
        return Err(StoreError::Invalid("the cart is empty".into()));
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(StoreError::Invalid(format!(
            "{currency:?} is not an ISO 4217 currency code"
        )));
    }
    let (tenant, id, engine) = (
        tx.tenant_id().to_string(),
        Uuid::new_v4().to_string(),
        tx.engine(),
    );
    let total: i64 = cart
        .items
        .iter()
        .map(|i| i.quantity * i.unit_price_cents)
        .sum();
    let next = sql(
        engine,
        "SELECT COALESCE(MAX(order_number), 0) + 1 FROM orders WHERE tenant_id = $1",
    );
    let number: i64 = on!(tx, |c| sqlx::query_scalar(next)
        .bind(&tenant)
        .fetch_one(c)
        .await)?;
    let statement = sql(
        engine,
        "INSERT INTO orders (id, tenant_id, customer_id, order_number, currency, total_cents)
         VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6)",
    );
    on!(tx, |c| sqlx::query(statement)
        .bind(&id)
        .bind(&tenant)
        .bind(&customer_id)
        .bind(number)
        .bind(currency)
        .bind(total)
        .execute(c)
        .await
        .map(drop))?;
    for item in &cart.items {
        let line = sql(
            engine,
            "INSERT INTO order_items (id, tenant_id, order_id, sku, name, quantity, unit_price_cents)
             VALUES ($1::uuid, $2, $3::uuid, $4, $4, $5, $6)",
        );
        let line_id = Uuid::new_v4().to_string();
        on!(tx, |c| sqlx::query(line)
            .bind(&line_id)
            .bind(&tenant)
            .bind(&id)
            .bind(&item.sku)
            .bind(item.quantity as i32)
            .bind(item.unit_price_cents)
            .execute(c)
            .await
            .map(drop))?;
    }
    let convert = sql(
        engine,
        "UPDATE shopping_carts SET status = 'converted', updated_at = {now}
         WHERE tenant_id = $1 AND id = $2::uuid",
    );
    on!(tx, |c| sqlx::query(convert)
        .bind(&tenant)
        .bind(cart_id)
        .execute(c)
        .await
        .map(drop))?;
    order(tx, &id).await
}

pub async fn orders(tx: &mut TenantTx, limit: i64) -> Result<Vec<Order>> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "SELECT id::text FROM orders WHERE tenant_id = $1 ORDER BY order_number LIMIT $2",
    );
    let ids: Vec<String> = on!(tx, |c| sqlx::query_scalar(statement)
        .bind(&tenant)
        .bind(limit)
        .fetch_all(c)
        .await)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(order(tx, &id).await?);
    }
    Ok(out)
}

pub async fn order(tx: &mut TenantTx, id: &str) -> Result<Order> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let head = sql(
        engine,
        "SELECT id::text, customer_id::text, order_number, status, currency::text, total_cents
         FROM orders WHERE tenant_id = $1 AND id = $2::uuid",
    );
    let row: OrderRow = on!(tx, |c| sqlx::query_as(head)
        .bind(&tenant)
        .bind(id)
        .fetch_optional(c)
        .await)?
    .ok_or(StoreError::NotFound("order"))?;
    let lines = sql(
        engine,
        "SELECT sku, name, quantity::bigint, unit_price_cents FROM order_items
         WHERE tenant_id = $1 AND order_id = $2::uuid ORDER BY sku",
    );
    let items = on!(tx, |c| sqlx::query_as(lines)
        .bind(&tenant)
        .bind(id)
        .fetch_all(c)
        .await)?;
    Ok(Order {
        id: row.id,
        customer_id: row.customer_id,
        order_number: row.order_number,
        status: row.status,
        currency: row.currency,
        total_cents: row.total_cents,
        items,
    })
}

/// Moves an order to `status` (`paid`, `shipped`, `cancelled`, `refunded`).
pub async fn set_order_status(tx: &mut TenantTx, id: &str, status: &str) -> Result<Order> {
    const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "cancelled", "refunded"];
    if !STATUSES.contains(&status) {
        return Err(StoreError::Invalid(format!(
            "{status:?} is not an order status: one of {}",
            STATUSES.join(", ")
        )));
    }
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "UPDATE orders SET status = $3, updated_at = {now} WHERE tenant_id = $1 AND id = $2::uuid",
    );
    let changed = on!(tx, |c| sqlx::query(statement)
        .bind(&tenant)
        .bind(id)
        .bind(status)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(StoreError::NotFound("order"));
    }
    order(tx, id).await
}

/// The tenant's row counts.
pub async fn summary(tx: &mut TenantTx) -> Result<Summary> {
    let (tenant, engine) = (tx.tenant_id().to_string(), tx.engine());
    let statement = sql(
        engine,
        "SELECT (SELECT count(*) FROM customers WHERE tenant_id = $1),
                (SELECT count(*) FROM customer_addresses WHERE tenant_id = $1),
                (SELECT count(*) FROM shopping_carts WHERE tenant_id = $1),
                (SELECT count(*) FROM cart_items WHERE tenant_id = $1),
                (SELECT count(*) FROM orders WHERE tenant_id = $1),
                (SELECT count(*) FROM order_items WHERE tenant_id = $1)",
    );
    let (customers, customer_addresses, shopping_carts, cart_items, orders, order_items): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = on!(tx, |c| sqlx::query_as(statement)
        .bind(&tenant)
        .fetch_one(c)
        .await)?;
    Ok(Summary {
        customers,
        customer_addresses,
        shopping_carts,
        cart_items,
        orders,
        order_items,
    })
}
