//! The outbox: rows written in a cycle's transaction, relayed to the broker afterwards.

use super::{OutboxMessage, OutboxRow, Store, StoreError};
use tokio_postgres::Row;
use uuid::Uuid;

const OUTBOX_COLUMNS: &str = "id, cycle_id, tenant_id, attempts, exchange, routing_key, message_id, headers, body, action_id";

pub(super) fn outbox_row(r: &Row) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: r.try_get(0)?,
        cycle_id: r.try_get(1)?,
        tenant_id: r.try_get(2)?,
        attempts: r.try_get(3)?,
        message: OutboxMessage {
            exchange: r.try_get(4)?,
            routing_key: r.try_get(5)?,
            message_id: r.try_get(6)?,
            headers: r.try_get(7)?,
            body: r.try_get(8)?,
            action_id: r.try_get(9)?,
        },
    })
}

/// A cycle's unpublished rows, in insertion order.
pub(super) async fn pending_of_cycle(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox
                 WHERE tenant_id = $1 AND cycle_id = $2 AND published_at IS NULL ORDER BY id"
            ),
            &[&tenant, &cycle_id],
        )
        .await?;
    rows.iter().map(outbox_row).collect()
}

/// Inserts one message of a cycle and returns its stored row.
pub(super) async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
    m: &OutboxMessage,
) -> Result<OutboxRow, StoreError> {
    insert_row(tx, tenant, cycle_id, m, "")
        .await?
        .ok_or_else(|| {
            StoreError::Corrupt(format!("outbox insert of {} returned no row", m.message_id))
        })
}

/// Like `insert`, but a message whose message_id is already in the outbox is skipped
/// (`None`): the one-per-action messages of the watchdog.
pub(super) async fn insert_once(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
    m: &OutboxMessage,
) -> Result<Option<OutboxRow>, StoreError> {
    insert_row(
        tx,
        tenant,
        cycle_id,
        m,
        "ON CONFLICT (message_id) DO NOTHING",
    )
    .await
}

async fn insert_row(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
    m: &OutboxMessage,
    on_conflict: &str,
) -> Result<Option<OutboxRow>, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id,
                                     headers, body, action_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) {on_conflict}
                 RETURNING {OUTBOX_COLUMNS}"
            ),
            &[
                &cycle_id,
                &tenant,
                &m.exchange,
                &m.routing_key,
                &m.message_id,
                &m.headers,
                &m.body,
                &m.action_id,
            ],
        )
        .await?;
    row.as_ref().map(outbox_row).transpose()
}

impl Store {
    /// Up to `limit` unpublished, unclaimed outbox rows for the sweeper: the least-tried first,
    /// so rows that keep failing (an exchange nobody bound yet) never starve the others.
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox
                     WHERE published_at IS NULL
                       AND (claimed_until IS NULL OR claimed_until <= now())
                     ORDER BY attempts, id LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Claims rows for `ttl` before publishing them; returns the ids this caller won. Another
    /// worker's sweep skips them until the claim expires.
    pub async fn claim_outbox(
        &self,
        ids: &[i64],
        ttl: std::time::Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let client = self.pool.get().await?;
        let secs = ttl.as_secs_f64();
        let rows = client
            .query(
                "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2)
                 WHERE id IN (SELECT id FROM outbox
                              WHERE id = ANY($1) AND published_at IS NULL
                                AND (claimed_until IS NULL OR claimed_until <= now())
                              FOR UPDATE SKIP LOCKED)
                 RETURNING id",
                &[&ids, &secs],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The broker confirmed the row: set `published_at` and, for an action, `actions.status =
    /// 'published'`. Idempotent: a second confirm changes nothing.
    pub async fn mark_published(&self, outbox_id: i64) -> Result<(), StoreError> {
        self.mark_published_many(&[outbox_id]).await.map(|_| ())
    }

    /// `mark_published` for a confirmed batch in one round trip. Returns, for each row this
    /// call marked, the seconds from its commit to now (the outbox lag).
    pub async fn mark_published_many(&self, outbox_ids: &[i64]) -> Result<Vec<f64>, StoreError> {
        if outbox_ids.is_empty() {
            return Ok(vec![]);
        }
        let client = self.pool.get().await?;
        // One statement, so the rows and their actions change together.
        let rows = client
            .query(
                "WITH o AS (
                    UPDATE outbox SET published_at = now()
                    WHERE id = ANY($1) AND published_at IS NULL
                    RETURNING tenant_id, cycle_id, action_id,
                              extract(epoch FROM now() - created_at)::float8 AS lag),
                 a AS (
                    UPDATE actions a SET status = 'published', updated_at = now()
                    FROM o
                    WHERE a.tenant_id = o.tenant_id AND a.cycle_id = o.cycle_id
                      AND a.action_id = o.action_id AND a.status = 'pending')
                 SELECT lag FROM o",
                &[&outbox_ids],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// How many rows wait to be published, and the age in seconds of the oldest (0 if none).
    pub async fn outbox_backlog(&self) -> Result<(i64, f64), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*),
                        coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
                 FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// A nack or a return: count the attempt, keep the row pending and release any claim so
    /// the next sweep (of any worker) may try again.
    pub async fn record_publish_failure(
        &self,
        outbox_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, claimed_until = NULL
                 WHERE id = $1 AND published_at IS NULL",
                &[&outbox_id, &reason],
            )
            .await?;
        Ok(())
    }
}
