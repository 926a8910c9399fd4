//! The outbox relay's sweep: republishes whatever stays pending (a crash, a nack, an outage).
//! The first sweep takes every row; until a broker session is up it retries every 200 ms. A
//! kick (a new session) makes the next sweep a full one, at once.

use super::{Next, Periodic};
use crate::store::StoreError;
use crate::worker::relay::Relay;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct OutboxSweep {
    relay: Arc<Relay>,
    every: Duration,
    /// The next sweep takes every pending row, not only those pending a whole interval.
    full: AtomicBool,
}

impl OutboxSweep {
    pub fn new(relay: Arc<Relay>, every: Duration) -> Self {
        Self {
            relay,
            every,
            full: AtomicBool::new(true),
        }
    }
}

impl Periodic for OutboxSweep {
    fn name(&self) -> &'static str {
        "outbox_sweep"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let full = self.full.load(Ordering::Relaxed);
            match self.relay.sweep(full).await {
                Ok(Some(_)) => {
                    self.full.store(false, Ordering::Relaxed);
                    Ok(Next::Interval)
                }
                Ok(None) if full => Ok(Next::After(self.every.min(Duration::from_millis(200)))),
                Ok(None) => Ok(Next::Interval),
                Err(e) => {
                    if e.is_unreachable() {
                        self.full.store(true, Ordering::Relaxed);
                    }
                    Err(e)
                }
            }
        })
    }

    fn woken(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.relay.kicked().await;
            self.full.store(true, Ordering::Relaxed);
        })
    }
}
