//! What the capacity benchmark reads back: how far a batch of triggers got, and when each
//! one's last action was confirmed. Counting only; the benchmark decides what it means.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};

/// One trigger's cycle as the benchmark measures it.
#[derive(Debug, Clone)]
pub struct BenchCycle {
    pub message_id: String,
    pub completed: bool,
    /// The broker's confirm of the cycle's last action message.
    pub last_confirmed: Option<DateTime<Utc>>,
}

impl Store {
    /// Cycles recorded for these message ids, and outbox rows still unpublished (any tenant).
    pub async fn bench_progress(&self, message_ids: &[&str]) -> Result<(i64, i64), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM cycles WHERE message_id = ANY($1)),
                        (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
                &[&message_ids],
            )
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Each message id's cycle with the confirm time of its last action message.
    pub async fn bench_cycles(&self, message_ids: &[&str]) -> Result<Vec<BenchCycle>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT c.message_id, c.status = 'completed', max(o.published_at)
                   FROM cycles c
                   LEFT JOIN outbox o ON o.cycle_id = c.cycle_id AND o.action_id IS NOT NULL
                  WHERE c.message_id = ANY($1)
                  GROUP BY c.message_id, c.status",
                &[&message_ids],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BenchCycle {
                    message_id: r.try_get(0)?,
                    completed: r.try_get(1)?,
                    last_confirmed: r.try_get(2)?,
                })
            })
            .collect()
    }
}
