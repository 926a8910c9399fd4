//! After a bulk load (`revenue-os ingest`): the watchdog over the loaded tenants that have
//! actions due, then whoever else wants the touched tenants (the deviation detector). Loads
//! are claimed from the store with a lease (`claim_load_follow_ups`, `SKIP LOCKED`) and marked
//! done afterwards, so a worker that dies mid-way leaves them to the next tick, and several
//! workers share them.

use super::{Next, Periodic};
use crate::store::{LoadFollowUp as Load, Store, StoreError, bounded};
use crate::watchdog::Watchdog;
use crate::worker::relay::Relay;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Told about each load's tenants once the watchdog has run for them.
pub trait LoadListener: Send + Sync {
    fn loaded<'a>(&'a self, load: &'a Load) -> BoxFuture<'a, Result<(), StoreError>>;
}

pub struct LoadFollowUp {
    pub store: Store,
    pub watchdog: Watchdog,
    pub relay: Arc<Relay>,
    pub listeners: Vec<Arc<dyn LoadListener>>,
    pub every: Duration,
    pub deadline: Duration,
}

/// Loads claimed per tick.
const CLAIM: i64 = 16;

impl Periodic for LoadFollowUp {
    fn name(&self) -> &'static str {
        "load_follow_up"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let lease = self.deadline * 16;
            let loads = bounded(
                self.deadline,
                self.store.claim_load_follow_ups(CLAIM, lease),
            )
            .await?;
            // Which tenants have actions due, read once for the whole claim.
            let due = match loads.is_empty() {
                true => Vec::new(),
                false => bounded(self.deadline, self.store.watch_due_tenants()).await?,
            };
            for load in &loads {
                for t in due.iter().copied().filter(|t| load.tenants.contains(t)) {
                    let swept = crate::watchdog::sweep(&self.store, &self.watchdog, Some(t));
                    let done = bounded(self.deadline * 4, swept).await?;
                    let rows: Vec<_> = done.into_iter().flat_map(|w| w.outbox).collect();
                    if !rows.is_empty() {
                        self.relay.publish(rows).await;
                    }
                }
                for l in &self.listeners {
                    l.loaded(load).await?;
                }
                bounded(self.deadline, self.store.load_followed_up(&load.load_id)).await?;
            }
            // A full claim: more may be waiting.
            Ok(if loads.len() as i64 == CLAIM {
                Next::After(Duration::ZERO)
            } else {
                Next::Interval
            })
        })
    }
}
