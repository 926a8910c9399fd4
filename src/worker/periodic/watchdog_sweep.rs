//! The watchdog inside the worker: evaluates every due action each `watchdog.interval_secs`.
//! Workers share the work through the store's `SKIP LOCKED` claims; reverts it writes are
//! relayed at once.

use super::{Next, Periodic};
use crate::store::{Store, StoreError, bounded};
use crate::watchdog::Watchdog;
use crate::worker::relay::Relay;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub struct WatchdogSweep {
    pub store: Store,
    pub watchdog: Watchdog,
    pub relay: Arc<Relay>,
    pub every: Duration,
    /// A sweep is many store calls: it gets a few deadlines' worth.
    pub deadline: Duration,
}

impl Periodic for WatchdogSweep {
    fn name(&self) -> &'static str {
        "watchdog_sweep"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let swept = crate::watchdog::sweep(&self.store, &self.watchdog, None);
            let done = bounded(self.deadline * 4, swept).await?;
            let rows: Vec<_> = done.into_iter().flat_map(|w| w.outbox).collect();
            if !rows.is_empty() {
                self.relay.publish(rows).await;
            }
            Ok(Next::Interval)
        })
    }
}
