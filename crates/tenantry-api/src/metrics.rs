//! Prometheus metrics: HTTP requests by route and status, and, computed at each scrape, tenants
//! by state, isolation and region and the outbox lag of every sink. Tenant ids are never labels
//! (thousands of series); routes are their templates (`/api/v1/tenants/{slug}`).

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::BTreeMap;
use std::time::Instant;
use tenantry_catalog::model::TenantFilter;

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

/// Refreshes the gauges computed from the catalog, then renders everything.
pub async fn render(State((state, handle)): State<(AppState, PrometheusHandle)>) -> String {
    let catalog = state.orch.catalog();
    if let Ok(tenants) = catalog
        .tenants(&TenantFilter {
            include_deleted: true,
            ..TenantFilter::default()
        })
        .await
    {
        let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for t in tenants {
            *counts
                .entry((t.state.to_string(), t.isolation.to_string(), t.region))
                .or_default() += 1;
        }
        for ((st, iso, region), n) in counts {
            metrics::gauge!("tenantry_tenants", "state" => st, "isolation" => iso, "region" => region)
                .set(n as f64);
        }
    }
    if let (Ok(newest), Some(sinks)) = (
        catalog.events(None, 0, i64::MAX).await,
        state.sinks.as_ref(),
    ) {
        let last = newest.last().map_or(0, |e| e.seq);
        for sink in sinks.iter() {
            if let Ok(cursor) = catalog.sink_cursor(sink).await {
                metrics::gauge!("tenantry_outbox_lag_events", "sink" => sink.clone())
                    .set((last - cursor).max(0) as f64);
            }
        }
    }
    handle.render()
}
