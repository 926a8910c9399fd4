//! Keeps `revenue_os_actions{status}` (and `revenue_os_approvals_pending`) fresh off the
//! scrape path: a scrape reads the gauges and never waits on the database, and however often
//! it comes, the count runs once an interval per worker. Past 1,000,000 actions the statuses
//! nobody acts on are sampled (`revenue_os.action_status_counts`, migration V22).

use super::{Next, Periodic};
use crate::store::{Store, StoreError, bounded};
use crate::telemetry::metrics;
use futures_util::future::BoxFuture;
use std::time::Duration;

pub struct ActionGauge {
    pub store: Store,
    pub every: Duration,
    pub deadline: Duration,
}

impl Periodic for ActionGauge {
    fn name(&self) -> &'static str {
        "action_gauge"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let counts = bounded(self.deadline, self.store.action_status_counts()).await?;
            metrics::actions_by_status(&counts);
            Ok(Next::Budgeted)
        })
    }
}
