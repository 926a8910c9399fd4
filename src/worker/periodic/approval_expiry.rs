//! Held actions past `approval.ttl_hours` expire, and those a newer cycle replaced are
//! superseded, every `approval.sweep_secs`: on its own clock, so turning the watchdog off
//! never leaves held actions waiting forever.

use super::{Next, Periodic};
use crate::clock::Clock;
use crate::store::{Store, StoreError, bounded};
use futures_util::future::BoxFuture;
use std::time::Duration;

pub struct ApprovalExpiry {
    pub store: Store,
    pub clock: Clock,
    pub ttl_hours: u32,
    pub every: Duration,
    pub deadline: Duration,
}

impl Periodic for ApprovalExpiry {
    fn name(&self) -> &'static str {
        "approval_expiry"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let expire = crate::approvals::sweep(&self.store, self.ttl_hours, self.clock.now());
            bounded(self.deadline, expire).await?;
            Ok(Next::Interval)
        })
    }
}
