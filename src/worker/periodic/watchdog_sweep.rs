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
            let due = bounded(self.deadline, self.store.watch_due_tenants()).await?;
            let swept =
                crate::watchdog::sweep_tenants(&self.store, &self.watchdog, &due, self.deadline);
            let done = swept.await?;
            if !done.outbox.is_empty() {
                self.relay.publish(done.outbox).await;
            }
            Ok(Next::Interval)
        })
    }
}
