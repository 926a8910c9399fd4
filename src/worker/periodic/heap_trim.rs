//! Returns the allocator's free heap pages to the kernel on a clock (`memory::trim`), so a
//! burst's peak does not stay the worker's resident size for the rest of its life.

use super::{Next, Periodic};
use crate::store::StoreError;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

pub struct HeapTrim {
    pub every: Duration,
}

impl Periodic for HeapTrim {
    fn name(&self) -> &'static str {
        "heap_trim"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    /// Nothing of it touches the database.
    fn gated(&self) -> bool {
        false
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            let released = crate::memory::trim();
            tracing::debug!(
                released,
                took_us = started.elapsed().as_micros() as u64,
                "heap trimmed"
            );
            if let Some(h) = crate::memory::heap() {
                crate::telemetry::metrics::heap(h.in_use, h.free, h.mapped);
            }
            Ok(Next::Interval)
        })
    }
}
