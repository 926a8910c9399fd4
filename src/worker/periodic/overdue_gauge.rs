//! Keeps `revenue_os_watchdog_oldest_overdue_seconds` fresh, whether or not this worker runs
//! the watchdog: a gauge that only moves when sweeps run would hide sweeps that stopped.

use super::{Next, Periodic};
use crate::store::{Store, StoreError, bounded};
use crate::telemetry::metrics;
use futures_util::future::BoxFuture;
use std::time::Duration;

pub struct OverdueGauge {
    pub store: Store,
    pub every: Duration,
    pub deadline: Duration,
}

impl Periodic for OverdueGauge {
    fn name(&self) -> &'static str {
        "overdue_gauge"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let secs = bounded(self.deadline, self.store.oldest_overdue_evaluation_secs()).await?;
            metrics::watchdog_overdue(secs);
            Ok(Next::Budgeted)
        })
    }
}
