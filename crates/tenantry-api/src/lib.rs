//! The control-plane REST API under `/api/v1`: what a sign-up flow, a billing system or an
//! operator's scripts drive. Handlers only translate HTTP to the orchestrator and back:
//! operations are queued and answered `202 Accepted` with the operation's URL, and the worker
//! of `tenantry serve` runs them.
//!
//! # Layout
//! - [`routes`]: one module per resource.
//! - [`auth`]: bearer tokens and scopes.
//! - [`problem`]: RFC 9457 errors, mapped from every layer in one place.
//! - [`convert`]: catalog records to the API's contract (`tenantry-api-types`).
//! - [`metrics`]: Prometheus metrics of requests, tenants and the outbox.
//! - [`openapi`]: the generated OpenAPI document.
//! - [`state`]: what handlers share.
//! - [`tokens`]: tokens kept in the catalog.
//! - [`views`]: answers built from several catalog reads, shared with the CLI's local mode.

pub mod auth;
pub mod convert;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod state;
pub mod tokens;
pub mod views;

pub use auth::{Caller, Scope, TokenVerifier};
pub use state::AppState;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use routes::{
    compute, domains, events, health, infrastructure, migrations, moves, operations, plans, pool,
    reconciliation, shard_admin, storage, tenants, topology,
};

/// Largest request body accepted (bodies are small JSON documents).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API, with `/metrics` when a Prometheus handle is given.
pub fn router_with_metrics(
    state: AppState,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Router {
    let app = router(state.clone());
    match prometheus {
        Some(handle) => app.merge(
            Router::new()
                .route("/metrics", get(metrics::render))
                .with_state((state, handle)),
        ),
        None => app,
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let reader = Router::new()
        .route("/tenants", get(tenants::list))
        .route("/tenants/{slug}", get(tenants::show))
        .route("/tenants/{slug}/history", get(tenants::history))
        .route("/operations", get(operations::list))
        .route("/operations/{id}", get(operations::show))
        .route("/plans", get(plans::list))
        .route("/placement/recommendations", get(plans::recommendations))
        .route("/tenants/{slug}/storage", get(storage::show))
        .route("/tenants/{slug}/compute", get(compute::show))
        .route("/tenants/{slug}/licence", get(compute::licence))
        .route("/tenants/{slug}/manifests", get(compute::manifests))
        .route("/reconciliation", get(reconciliation::last))
        .route("/tenants/{slug}/domains", get(domains::show))
        .route("/tenants/{slug}/stats", get(storage::stats))
        .route("/domains/{host}", get(domains::resolve))
        .route("/pool", get(pool::status))
        .route("/events", get(events::list))
        .route("/events/dead-letters", get(events::dead_letters))
        .route("/regions", get(topology::regions))
        .route("/shards", get(topology::shards))
        .route(
            "/infrastructure/tenants/{tenantId}",
            get(infrastructure::show),
        )
        .route(
            "/infrastructure/tenants/{tenantId}/transitions",
            get(infrastructure::transitions),
        )
        .route_layer(from_fn_with_state(
            (state.clone(), Scope::Reader),
            auth::require,
        ));
    let operator = Router::new()
        .route("/tenants", post(tenants::create))
        .route(
            "/tenants/{slug}",
            axum::routing::delete(tenants::delete).patch(compute::update),
        )
        .route("/tenants/{slug}/suspend", post(tenants::suspend))
        .route("/tenants/{slug}/resume", post(tenants::resume))
        .route("/tenants/{slug}/domains", axum::routing::put(domains::set))
        .route("/tenants/{slug}/move", post(moves::start))
        .route(
            "/infrastructure/tenants/{tenantId}/provision",
            post(infrastructure::provision),
        )
        .route(
            "/infrastructure/tenants/{tenantId}",
            axum::routing::put(infrastructure::update).delete(infrastructure::deprovision),
        )
        .route("/operations/{id}/resume", post(operations::resume))
        .route_layer(from_fn_with_state(
            (state.clone(), Scope::Operator),
            auth::require,
        ));
    let admin = Router::new()
        .route("/shards", post(shard_admin::add))
        .route("/shards/{name}/drain", post(shard_admin::drain))
        .route("/shards/{name}/activate", post(shard_admin::activate))
        .route("/pool/fill", post(pool::fill))
        .route("/migrations", post(migrations::run))
        .route(
            "/tokens",
            get(routes::tokens::list).post(routes::tokens::create),
        )
        .route(
            "/tokens/{name}",
            axum::routing::delete(routes::tokens::revoke),
        )
        .route_layer(from_fn_with_state(
            (state.clone(), Scope::Admin),
            auth::require,
        ));
    let api = reader.merge(operator).merge(admin).route(
        "/openapi.json",
        get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                openapi::document(),
            )
        }),
    );
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Enforced by the body extractor, so that an oversized body gets a problem document.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}
