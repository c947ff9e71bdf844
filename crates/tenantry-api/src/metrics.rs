//! Prometheus metrics: HTTP requests by route and status, and, computed at each scrape, tenants
//! by state, isolation and region, operations by kind and state, and the outbox lag of every sink. Tenant ids are never labels
//! (thousands of series); routes are their templates (`/api/v1/tenants/{slug}`).

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Instant;

/// Counts and times every request.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tenantry_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tenantry_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Refreshes the gauges computed from the catalog (one grouped count per table, so a scrape
/// costs the same at any fleet size), then renders everything.
pub async fn render(State((state, handle)): State<(AppState, PrometheusHandle)>) -> String {
    let catalog = state.orch.catalog();
    match catalog.counts().await {
        Ok(counts) => {
            for t in counts.tenants {
                metrics::gauge!("tenantry_tenants", "state" => t.state, "isolation" => t.isolation, "region" => t.region)
                    .set(t.count as f64);
            }
            for o in counts.operations {
                metrics::gauge!("tenantry_operations", "kind" => o.kind, "state" => o.state)
                    .set(o.count as f64);
            }
            if let Some(sinks) = state.sinks.as_ref() {
                for sink in sinks.iter() {
                    if let Ok(cursor) = catalog.sink_cursor(sink).await {
                        metrics::gauge!("tenantry_outbox_lag_events", "sink" => sink.clone())
                            .set((counts.last_event_seq - cursor).max(0) as f64);
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the catalog could not be counted"),
    }
    handle.render()
}
