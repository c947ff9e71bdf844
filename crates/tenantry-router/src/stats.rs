//! Query timings per tenant, added up in memory and written to the catalog now and then
//! (`CatalogStore::record_queries`), for placement decisions (`tenantry tenant stats`,
//! `placement recommend`): a write to the catalog per transaction would cost more than the
//! transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantry_catalog::CatalogStore;
use tenantry_core::TenantId;

/// Transactions and their total time, per tenant, since the last flush.
#[derive(Default)]
pub(crate) struct QueryStats {
    pending: Mutex<HashMap<TenantId, (i64, f64)>>,
}

impl QueryStats {
    pub(crate) fn record(&self, tenant: TenantId, took: Duration) {
        let mut pending = self.pending.lock().expect("query stats");
        let entry = pending.entry(tenant).or_default();
        entry.0 += 1;
        entry.1 += took.as_secs_f64() * 1000.0;
    }

    /// Writes what was recorded to the catalog. What fails to be written is kept for the next
    /// flush.
    pub(crate) async fn flush(&self, catalog: &Arc<dyn CatalogStore>) {
        let taken: Vec<(TenantId, (i64, f64))> =
            self.pending.lock().expect("query stats").drain().collect();
        for (tenant, (queries, ms)) in taken {
            if let Err(e) = catalog.record_queries(tenant, queries, ms).await {
                tracing::warn!(%tenant, error = %e, "could not record query timings; keeping them for the next flush");
                let mut pending = self.pending.lock().expect("query stats");
                let entry = pending.entry(tenant).or_default();
                entry.0 += queries;
                entry.1 += ms;
            }
        }
    }
}
