//! The relay: reads the outbox after each sink's cursor and delivers, in outbox order.
//!
//! Per sink, events go out strictly in `seq` order (so per tenant in lifecycle order). A
//! transient failure stops that sink's round where it is — later events wait, nothing is
//! skipped — and the next round retries from the same event. A permanent refusal records the
//! event as a dead letter (visible with `tenantry events dead-letters` and in the API) and moves
//! on. The cursor advances only after the receiver accepted, so delivery is at least once.

use crate::sink::EventSink;
use std::sync::Arc;
use std::time::Duration;
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::DeadLetter;

/// How many events one round reads per sink.
const BATCH: i64 = 200;

pub struct Relay {
    catalog: Arc<dyn CatalogStore>,
    sinks: Vec<Arc<dyn EventSink>>,
}

/// What one round did for one sink.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub delivered: usize,
    pub dead_lettered: usize,
    /// The transient error that stopped the round early, if any.
    pub stalled: Option<String>,
}

impl Relay {
    pub fn new(catalog: Arc<dyn CatalogStore>, sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Self { catalog, sinks }
    }

    /// Delivers what is pending to every sink once.
    pub async fn round(
        &self,
    ) -> Result<Vec<(String, RoundReport)>, tenantry_catalog::CatalogError> {
        let mut out = Vec::with_capacity(self.sinks.len());
        for sink in &self.sinks {
            out.push((sink.name().to_owned(), self.round_for(sink.as_ref()).await?));
        }
        Ok(out)
    }

    async fn round_for(
        &self,
        sink: &dyn EventSink,
    ) -> Result<RoundReport, tenantry_catalog::CatalogError> {
        let mut report = RoundReport::default();
        let cursor = self.catalog.sink_cursor(sink.name()).await?;
        let events = self.catalog.events(None, cursor, BATCH).await?;
        for event in events {
            match sink.deliver(&event).await {
                Ok(()) => {
                    report.delivered += 1;
                    self.catalog.set_sink_cursor(sink.name(), event.seq).await?;
                }
                Err(e) if e.transient => {
                    tracing::warn!(sink = sink.name(), seq = event.seq, error = %e, "delivery failed; will retry");
                    metrics::counter!("tenantry_sink_delivery_failures_total", "sink" => sink.name().to_owned())
                        .increment(1);
                    report.stalled = Some(e.message);
                    break;
                }
                Err(e) => {
                    tracing::error!(sink = sink.name(), seq = event.seq, error = %e, "event refused for good; dead-lettered");
                    self.catalog
                        .add_dead_letter(DeadLetter {
                            sink: sink.name().to_owned(),
                            seq: event.seq,
                            error: e.message,
                            attempts: 1,
                            at: chrono::Utc::now(),
                        })
                        .await?;
                    report.dead_lettered += 1;
                    self.catalog.set_sink_cursor(sink.name(), event.seq).await?;
                }
            }
        }
        Ok(report)
    }

    /// Runs rounds every `interval` until `stop` resolves.
    pub async fn run(&self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.round().await {
                tracing::error!(error = %e, "relay round failed");
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
