//! Bounded tables (migrations/V17): the month partitions of the tenants' daily data, and the
//! batched deletes of old history. Both go through the owner's SECURITY DEFINER functions:
//! the worker's role creates no table, drops none, and may not DELETE from these tables.

use super::{Store, StoreError};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use std::collections::BTreeSet;

/// A table partitioned by month on a date column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioned {
    MetricSnapshots,
    RevenueEvents,
}

impl Partitioned {
    pub const ALL: [Partitioned; 2] = [Partitioned::MetricSnapshots, Partitioned::RevenueEvents];

    pub fn table(self) -> &'static str {
        match self {
            Partitioned::MetricSnapshots => "metric_snapshots",
            Partitioned::RevenueEvents => "revenue_events",
        }
    }

    /// The partition key.
    pub fn date_column(self) -> &'static str {
        match self {
            Partitioned::MetricSnapshots => "date",
            Partitioned::RevenueEvents => "effective_date",
        }
    }

    pub(super) fn of_table(table: &str) -> Option<Partitioned> {
        Partitioned::ALL.into_iter().find(|p| p.table() == table)
    }
}

/// A history table the retention service deletes from by age (`revenue_os.prune_history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// With their actions, data-quality actions, reports, evaluations, approval decisions
    /// and outbox rows; never a cycle with a live action or an unpublished outbox row.
    Cycles,
    /// With their rejected rows.
    Loads,
    /// With their webhook deliveries; never one with a delivery still being tried.
    Notifications,
    Deviations,
    RejectedTriggers,
    SignIns,
}

impl History {
    pub const ALL: [History; 6] = [
        History::Cycles,
        History::Loads,
        History::Notifications,
        History::Deviations,
        History::RejectedTriggers,
        History::SignIns,
    ];

    /// Its name to `prune_history` (the table's).
    pub fn name(self) -> &'static str {
        match self {
            History::Cycles => "cycles",
            History::Loads => "loads",
            History::Notifications => "notifications",
            History::Deviations => "deviations",
            History::RejectedTriggers => "rejected_triggers",
            History::SignIns => "operator_sign_ins",
        }
    }
}

/// The first day of `d`'s month.
pub fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The distinct months of `dates`, oldest first.
pub(super) fn months(dates: impl IntoIterator<Item = NaiveDate>) -> Vec<NaiveDate> {
    dates
        .into_iter()
        .map(month_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Creates the months of `table` that `months` lack, in the caller's transaction, before its
/// first write (migrations/V17 says why first): how many it created.
pub(super) async fn ensure_months(
    tx: &Transaction<'_>,
    table: Partitioned,
    months: &[NaiveDate],
) -> Result<i32, StoreError> {
    if months.is_empty() {
        return Ok(0);
    }
    Ok(tx
        .query_one(
            "SELECT revenue_os.ensure_month_partitions($1, $2)",
            &[&table.table(), &months],
        )
        .await?
        .try_get(0)?)
}

impl Store {
    /// Creates the months of `table` that `months` (any day of each) lack, in a transaction
    /// of its own: how many it created.
    pub async fn ensure_month_partitions(
        &self,
        table: Partitioned,
        months: &[NaiveDate],
    ) -> Result<i32, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let made = ensure_months(&tx, table, months).await?;
        tx.commit().await?;
        Ok(made)
    }

    /// Drops the oldest month of `table` that ends on or before `before` (every row in it is
    /// older): its name, or `None` when no month is that old. Waits at most a second for the
    /// table's lock (then a `lock_not_available` error: the caller tries again later).
    pub async fn drop_month_partition(
        &self,
        table: Partitioned,
        before: NaiveDate,
    ) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one(
                "SELECT revenue_os.drop_month_partition($1, $2)",
                &[&table.table(), &before],
            )
            .await?
            .try_get(0)?)
    }

    /// Deletes at most `limit` rows of `what` older than `before`, oldest first, in one short
    /// transaction (`revenue_os.prune_history`): how many went (rows that went with them by
    /// ON DELETE CASCADE not counted).
    pub async fn prune_history(
        &self,
        what: History,
        before: DateTime<Utc>,
        limit: i32,
    ) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let n: i64 = client
            .query_one(
                "SELECT revenue_os.prune_history($1, $2, $3)",
                &[&what.name(), &before, &limit],
            )
            .await?
            .try_get(0)?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn months_are_distinct_firsts_in_order() {
        assert_eq!(
            months([
                d("2026-03-31"),
                d("2026-01-15"),
                d("2026-03-01"),
                d("2025-12-31")
            ]),
            vec![d("2025-12-01"), d("2026-01-01"), d("2026-03-01")]
        );
        assert!(months([]).is_empty());
    }

    #[test]
    fn every_partitioned_table_is_known_by_its_name() {
        for p in Partitioned::ALL {
            assert_eq!(Partitioned::of_table(p.table()), Some(p));
        }
        assert_eq!(Partitioned::of_table("campaigns"), None);
    }
}
