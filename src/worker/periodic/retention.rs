//! Bounded tables: published outbox rows older than `retention.outbox_days` are deleted, in
//! batches of `retention.batch`, each its own short transaction, until none is left or the
//! pass has deleted `MAX_BATCHES` batches (the rest waits for the next pass, so a first pass
//! over a large backlog never holds the service long).

use super::{Next, Periodic};
use crate::clock::Clock;
use crate::store::{Store, StoreError, bounded};
use futures_util::future::BoxFuture;
use std::time::Duration;

pub struct Retention {
    pub store: Store,
    pub clock: Clock,
    pub outbox_days: u32,
    pub batch: u32,
    pub every: Duration,
    pub deadline: Duration,
}

/// Batches per pass.
const MAX_BATCHES: u32 = 100;

impl Periodic for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            if self.outbox_days == 0 {
                return Ok(Next::Interval);
            }
            let before = self.clock.now() - chrono::Duration::days(i64::from(self.outbox_days));
            let limit = i32::try_from(self.batch.max(1)).unwrap_or(i32::MAX);
            let mut deleted = 0;
            for _ in 0..MAX_BATCHES {
                let n = bounded(self.deadline, self.store.prune_outbox(before, limit)).await?;
                deleted += n;
                if n < u64::from(self.batch.max(1)) {
                    if deleted > 0 {
                        tracing::info!(deleted, %before, "retention: published outbox rows deleted");
                    }
                    return Ok(Next::Interval);
                }
            }
            tracing::info!(deleted, %before, "retention: more to delete, continuing at once");
            Ok(Next::After(Duration::ZERO))
        })
    }
}
