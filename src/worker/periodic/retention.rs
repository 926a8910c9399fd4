//! Bounded tables (issue 21, migrations/V16 and V17). Each pass, by the service's clock:
//! 1. the outbox: rows published more than `retention.outbox_days` ago;
//! 2. history: cycles (with everything hanging off them, never one with a live action or an
//!    unpublished outbox row), loads, notifications, deviations, rejected triggers and
//!    sign-ins older than `retention.history_days`;
//! 3. partitions: the current and the next `MONTHS_AHEAD` months of metric_snapshots and
//!    revenue_events are created, and months whose last day is older than
//!    `retention.data_days` dropped.
//!
//! Deletes go in batches of `retention.batch` rows (cycles a tenth of that), each its own
//! short transaction, until a batch comes back short or the pass has run `MAX_BATCHES`
//! batches (the rest waits for the next pass, run at once, so a first pass over a large
//! backlog never holds the service long).

use super::{Next, Periodic};
use crate::clock::Clock;
use crate::config::RetentionSettings;
use crate::store::{History, Partitioned, Store, StoreError, bounded, month_of};
use chrono::{DateTime, Months, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::error::SqlState;

pub struct Retention {
    pub store: Store,
    pub clock: Clock,
    pub outbox_days: u32,
    pub history_days: u32,
    pub data_days: u32,
    pub batch: u32,
    pub every: Duration,
    pub deadline: Duration,
}

/// Batches per pass.
const MAX_BATCHES: u32 = 100;

/// Months created ahead of the current one, so routine loads find theirs.
pub const MONTHS_AHEAD: u32 = 2;

/// Months dropped per table per pass, at most.
const MAX_DROPS: u32 = 24;

impl Retention {
    pub fn new(store: Store, clock: Clock, s: &RetentionSettings, deadline: Duration) -> Self {
        Retention {
            store,
            clock,
            outbox_days: s.outbox_days,
            history_days: s.history_days,
            data_days: s.data_days,
            batch: s.batch,
            every: Duration::from_secs(s.sweep_secs.max(1)),
            deadline,
        }
    }

    fn limit(&self, divisor: u32) -> i32 {
        i32::try_from((self.batch / divisor).max(1)).unwrap_or(i32::MAX)
    }

    /// Runs `batch` until it deletes fewer than `limit` rows (done: true) or the pass's
    /// budget is spent (false); how many it deleted.
    async fn drain<F, Fut>(
        &self,
        budget: &mut u32,
        limit: i32,
        mut batch: F,
    ) -> Result<(u64, bool), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<u64, StoreError>>,
    {
        let mut deleted = 0;
        while *budget > 0 {
            *budget -= 1;
            let n = bounded(self.deadline, batch()).await?;
            deleted += n;
            if n < limit.unsigned_abs().into() {
                return Ok((deleted, true));
            }
        }
        Ok((deleted, false))
    }

    async fn outbox(&self, now: DateTime<Utc>, budget: &mut u32) -> Result<bool, StoreError> {
        if self.outbox_days == 0 {
            return Ok(true);
        }
        let before = now - chrono::Duration::days(i64::from(self.outbox_days));
        let limit = self.limit(1);
        let (deleted, done) = self
            .drain(budget, limit, || self.store.prune_outbox(before, limit))
            .await?;
        if deleted > 0 {
            tracing::info!(deleted, %before, "retention: published outbox rows deleted");
        }
        Ok(done)
    }

    async fn history(&self, now: DateTime<Utc>, budget: &mut u32) -> Result<bool, StoreError> {
        if self.history_days == 0 {
            return Ok(true);
        }
        let before = now - chrono::Duration::days(i64::from(self.history_days));
        for what in History::ALL {
            let limit = self.limit(if what == History::Cycles { 10 } else { 1 });
            let (deleted, done) = self
                .drain(budget, limit, || {
                    self.store.prune_history(what, before, limit)
                })
                .await?;
            if deleted > 0 {
                tracing::info!(table = what.name(), deleted, %before, "retention: history deleted");
            }
            if !done {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn partitions(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let today = now.date_naive();
        let ahead: Vec<NaiveDate> = (0..=MONTHS_AHEAD)
            .filter_map(|n| month_of(today).checked_add_months(Months::new(n)))
            .collect();
        let horizon = (self.data_days > 0)
            .then(|| today.checked_sub_days(chrono::Days::new(u64::from(self.data_days))))
            .flatten();
        for table in Partitioned::ALL {
            let made = bounded(
                self.deadline,
                self.store.ensure_month_partitions(table, &ahead),
            )
            .await?;
            if made > 0 {
                tracing::info!(
                    table = table.table(),
                    created = made,
                    "retention: months created ahead"
                );
            }
            let Some(before) = horizon else { continue };
            for _ in 0..MAX_DROPS {
                match bounded(
                    self.deadline,
                    self.store.drop_month_partition(table, before),
                )
                .await
                {
                    Ok(Some(partition)) => {
                        tracing::info!(%partition, %before, "retention: month dropped");
                    }
                    Ok(None) => break,
                    // Readers or a load hold the table: the next pass tries again.
                    Err(e) if e.sql_state() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                        tracing::info!(
                            table = table.table(),
                            "retention: table busy, month kept for the next pass"
                        );
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl Periodic for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn interval(&self) -> Duration {
        self.every
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let now = self.clock.now();
            let mut budget = MAX_BATCHES;
            let outbox_done = self.outbox(now, &mut budget).await?;
            let history_done = outbox_done && self.history(now, &mut budget).await?;
            self.partitions(now).await?;
            if outbox_done && history_done {
                return Ok(Next::Interval);
            }
            tracing::info!("retention: more to delete, continuing at once");
            Ok(Next::After(Duration::ZERO))
        })
    }
}
