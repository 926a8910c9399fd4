//! The outbox: rows written in a cycle's transaction, relayed to the broker afterwards.

use super::cached::Cached;
use super::tenant::{set_tenant, set_tenants_generic, tenant_tx, tenants_in_order};
use super::{OutboxKey, OutboxMessage, OutboxRow, Store, StoreError, StoredBody};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use uuid::Uuid;

/// A row as the relay needs it, `o` being the outbox. A body kept by reference is rebuilt
/// from the row it refers to (migration V19).
const OUTBOX_COLUMNS: &str = "o.id, o.cycle_id, o.tenant_id, o.attempts, o.exchange, o.routing_key,
    o.message_id, o.headers,
    CASE o.body_ref
      WHEN 'action' THEN convert_to((o.body_head || jsonb_build_object('action',
          (SELECT a.action FROM actions a
            WHERE a.cycle_id = o.cycle_id AND a.action_id = o.action_id)))::text, 'UTF8')
      WHEN 'cycle_output' THEN convert_to(
          (SELECT c.output FROM cycles c WHERE c.cycle_id = o.cycle_id)::text, 'UTF8')
      ELSE o.body
    END,
    o.action_id";

/// The same row made from an action that is its own entry (migration V27), `a` being
/// `actions`: its message is kept in `message`, its body rebuilt as V19 rebuilds it.
const ACTION_ENTRY_COLUMNS: &str = "a.outbox_id, a.cycle_id, a.tenant_id, a.publish_attempts,
    a.message ->> 'exchange', a.message ->> 'routing_key', a.message ->> 'message_id',
    a.message -> 'headers',
    convert_to((a.message -> 'head' || jsonb_build_object('action', a.action))::text, 'UTF8'),
    a.action_id";

/// An unpublished action entry (V27): the partial index `actions_unpublished` holds these.
const ACTION_ENTRY_PENDING: &str = "a.published_at IS NULL AND a.message IS NOT NULL";

/// What an action row keeps of its message when it is its own entry (`actions.message`):
/// everything but the action, which the row holds already. Borrowed, and written as jsonb
/// straight from here.
#[derive(Debug, serde::Serialize)]
pub(super) struct EntryMessage<'a> {
    exchange: &'a str,
    routing_key: &'a str,
    message_id: &'a str,
    headers: &'a serde_json::Value,
    head: &'a serde_json::Value,
}

/// `m` as its action's entry; `None` for a message the outbox keeps instead.
pub(super) fn entry_message(m: &OutboxMessage) -> Option<(&str, EntryMessage<'_>)> {
    let (Some(action_id), StoredBody::AroundAction(head)) = (&m.action_id, &m.stored) else {
        return None;
    };
    Some((
        action_id,
        EntryMessage {
            exchange: &m.exchange,
            routing_key: &m.routing_key,
            message_id: &m.message_id,
            headers: &m.headers,
            head,
        },
    ))
}

/// How a message's body goes into the row: `(body, body_ref, body_head)`.
fn kept(
    m: &OutboxMessage,
) -> (
    Option<&[u8]>,
    Option<&'static str>,
    Option<&serde_json::Value>,
) {
    match &m.stored {
        StoredBody::Verbatim => (Some(m.body.as_slice()), None, None),
        StoredBody::AroundAction(head) => (None, Some("action"), Some(head)),
        StoredBody::CycleOutput => (None, Some("cycle_output"), None),
    }
}

/// The row just inserted for `m`: what the caller handed in, with the id the database drew.
pub(super) fn inserted(
    id: i64,
    tenant: Uuid,
    cycle_id: Option<Uuid>,
    m: OutboxMessage,
) -> OutboxRow {
    OutboxRow {
        id,
        cycle_id,
        tenant_id: tenant,
        attempts: 0,
        message: m,
    }
}

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
            body: r.try_get::<_, Option<Vec<u8>>>(8)?.ok_or_else(|| {
                StoreError::Corrupt("an outbox row's body refers to a row that is gone".into())
            })?,
            action_id: r.try_get(9)?,
            stored: StoredBody::Verbatim,
        },
    })
}

/// A cycle's unpublished rows, in insertion order.
pub(super) async fn pending_of_cycle(
    tx: &Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = tx
        .query_cached(
            &format!(
                "SELECT {ACTION_ENTRY_COLUMNS} FROM actions a
                  WHERE a.tenant_id = $1 AND a.cycle_id = $2 AND {ACTION_ENTRY_PENDING}
                 UNION ALL
                 SELECT {OUTBOX_COLUMNS} FROM outbox o
                  WHERE o.tenant_id = $1 AND o.cycle_id = $2 AND o.published_at IS NULL
                 ORDER BY 1"
            ),
            &[&tenant, &cycle_id],
        )
        .await?;
    rows.iter().map(outbox_row).collect()
}

/// Inserts one message of a cycle and returns its stored row.
pub(super) async fn insert(
    tx: &Transaction<'_>,
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

/// `insert_all`'s statement, for a caller that prepares it ahead (`cached::prepare_all`).
pub(super) const INSERT_ALL_SQL: &str =
    "INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id,
                         headers, body, action_id, body_ref, body_head)
     SELECT $1, $2, e, k, m, h, b, a, r, hd
       FROM UNNEST($3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bytea[],
                   $8::text[], $9::text[], $10::jsonb[])
            WITH ORDINALITY AS u(e, k, m, h, b, a, r, hd, n)
      ORDER BY n
     RETURNING id";

/// Inserts a cycle's messages in one statement and returns their stored rows, in order (the
/// ids are drawn in the messages' order, which is the order the relay publishes them in).
/// The messages become the rows: their bodies are not copied.
pub(super) async fn insert_all(
    tx: &Transaction<'_>,
    tenant: Uuid,
    cycle_id: Uuid,
    messages: Vec<OutboxMessage>,
) -> Result<Vec<OutboxRow>, StoreError> {
    if messages.is_empty() {
        return Ok(vec![]);
    }
    let exchange: Vec<&str> = messages.iter().map(|m| m.exchange.as_str()).collect();
    let key: Vec<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
    let id: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    let headers: Vec<&serde_json::Value> = messages.iter().map(|m| &m.headers).collect();
    let action: Vec<Option<&str>> = messages.iter().map(|m| m.action_id.as_deref()).collect();
    let (mut body, mut body_ref, mut body_head) = (vec![], vec![], vec![]);
    for m in &messages {
        let (b, r, h) = kept(m);
        body.push(b);
        body_ref.push(r);
        body_head.push(h);
    }
    // Only the ids come back: the bodies are the caller's already.
    let rows = tx
        .query_cached(
            INSERT_ALL_SQL,
            &[
                &cycle_id, &tenant, &exchange, &key, &id, &headers, &body, &action, &body_ref,
                &body_head,
            ],
        )
        .await?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() != messages.len() {
        return Err(StoreError::Corrupt(format!(
            "outbox insert of {} messages returned {} rows",
            messages.len(),
            ids.len()
        )));
    }
    // Drawn in the messages' order (ORDER BY n), so the ascending ids are theirs in turn.
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .zip(messages)
        .map(|(id, m)| inserted(id, tenant, Some(cycle_id), m))
        .collect())
}

/// Like `insert`, but a message whose message_id is already in the outbox is skipped
/// (`None`): the one-per-action messages of the watchdog.
pub(super) async fn insert_once(
    tx: &Transaction<'_>,
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

/// `insert_once` for a message of no cycle (a deviation's trigger).
pub(super) async fn insert_once_uncycled(
    tx: &Transaction<'_>,
    tenant: Uuid,
    m: &OutboxMessage,
) -> Result<Option<OutboxRow>, StoreError> {
    insert_row(tx, tenant, None, m, "ON CONFLICT (message_id) DO NOTHING").await
}

async fn insert_row(
    tx: &Transaction<'_>,
    tenant: Uuid,
    cycle_id: impl Into<Option<Uuid>>,
    m: &OutboxMessage,
    on_conflict: &str,
) -> Result<Option<OutboxRow>, StoreError> {
    let cycle_id: Option<Uuid> = cycle_id.into();
    let (body, body_ref, body_head) = kept(m);
    let row = tx
        .query_opt_cached(
            &format!(
                "INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id,
                                     headers, body, action_id, body_ref, body_head)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) {on_conflict}
                 RETURNING id"
            ),
            &[
                &cycle_id,
                &tenant,
                &m.exchange,
                &m.routing_key,
                &m.message_id,
                &m.headers,
                &body,
                &m.action_id,
                &body_ref,
                &body_head,
            ],
        )
        .await?;
    row.map(|r| Ok(inserted(r.try_get(0)?, tenant, cycle_id, m.clone())))
        .transpose()
}

impl Store {
    /// Deletes at most `limit` outbox rows published before `before` (oldest first), under
    /// `revenue_os.prune_outbox`: how many went.
    pub async fn prune_outbox(&self, before: DateTime<Utc>, limit: i32) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let n: i64 = client
            .query_one_cached("SELECT revenue_os.prune_outbox($1, $2)", &[&before, &limit])
            .await?
            .try_get(0)?;
        Ok(n.max(0) as u64)
    }

    /// Queues messages of no cycle in one transaction, each under its own tenant's scope, a
    /// message id already in the outbox skipped: the rows that are new, to relay. The caller
    /// sizes the transaction (the load follow-up passes 500 at a time).
    pub async fn queue_uncycled(
        &self,
        messages: &[(Uuid, OutboxMessage)],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut queued = Vec::new();
        for (tenant, m) in messages {
            set_tenant(&tx, *tenant).await?;
            queued.extend(insert_once_uncycled(&tx, *tenant, m).await?);
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Up to `limit` unpublished, unclaimed outbox rows for the sweeper: the least-tried first,
    /// so rows that keep failing (an exchange nobody bound yet) never starve the others.
    /// The keys come from `revenue_os.pending_outbox`; each tenant's rows are then read under
    /// its own scope.
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys: Vec<(i64, Uuid)> = tx
            .query_cached(
                "SELECT id, tenant_id FROM revenue_os.pending_outbox($1)",
                &[&limit],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut rows = Vec::with_capacity(keys.len());
        for tenant in tenants_in_order(keys.iter().map(|k| k.1)) {
            set_tenant(&tx, tenant).await?;
            let ids: Vec<i64> = keys.iter().filter(|k| k.1 == tenant).map(|k| k.0).collect();
            let found = tx
                .query_cached(
                    &format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox o
                          WHERE o.tenant_id = $1 AND o.id = ANY($2) AND o.published_at IS NULL
                         UNION ALL
                         SELECT {ACTION_ENTRY_COLUMNS} FROM actions a
                          WHERE a.tenant_id = $1 AND a.outbox_id = ANY($2)
                            AND {ACTION_ENTRY_PENDING}"
                    ),
                    &[&tenant, &ids],
                )
                .await?;
            for r in &found {
                rows.push(outbox_row(r)?);
            }
        }
        tx.commit().await?;
        // The sweep function's order: least-tried first, then oldest.
        let position: std::collections::HashMap<i64, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.0, i)).collect();
        rows.sort_by_key(|r| position.get(&r.id).copied());
        Ok(rows)
    }

    /// Claims rows for `ttl` before publishing them; returns the ids this caller won. Another
    /// worker's sweep skips them until the claim expires. One transaction, each tenant's rows
    /// claimed under its own scope.
    pub async fn claim_outbox(
        &self,
        keys: &[OutboxKey],
        ttl: std::time::Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let secs = ttl.as_secs_f64();
        let mut won = Vec::new();
        for tenant in tenants_in_order(keys.iter().map(|k| k.tenant_id)) {
            set_tenant(&tx, tenant).await?;
            let ids = ids_of(keys, tenant);
            let rows = tx
                .query_cached(
                    "WITH o AS (
                        UPDATE outbox SET claimed_until = now() + make_interval(secs => $3)
                         WHERE id IN (SELECT id FROM outbox
                                       WHERE tenant_id = $1 AND id = ANY($2)
                                         AND published_at IS NULL
                                         AND (claimed_until IS NULL OR claimed_until <= now())
                                         FOR UPDATE SKIP LOCKED)
                        RETURNING id),
                     a AS (
                        UPDATE actions
                           SET publish_claimed_until = now() + make_interval(secs => $3)
                         WHERE outbox_id IN (
                               SELECT a.outbox_id FROM actions a
                                WHERE a.tenant_id = $1 AND a.outbox_id = ANY($2)
                                  AND a.published_at IS NULL AND a.message IS NOT NULL
                                  AND (a.publish_claimed_until IS NULL
                                       OR a.publish_claimed_until <= now())
                                  FOR UPDATE SKIP LOCKED)
                           AND published_at IS NULL AND message IS NOT NULL
                        RETURNING outbox_id)
                     SELECT id FROM o UNION ALL SELECT outbox_id FROM a",
                    &[&tenant, &ids, &secs],
                )
                .await?;
            for r in &rows {
                won.push(r.try_get(0)?);
            }
        }
        tx.commit().await?;
        Ok(won)
    }

    /// The broker confirmed the row: set `published_at` and, for an action, `actions.status =
    /// 'published'`. Idempotent: a second confirm changes nothing.
    pub async fn mark_published(&self, key: OutboxKey) -> Result<(), StoreError> {
        self.mark_published_many(&[key]).await.map(|_| ())
    }

    /// `mark_published` for a confirmed batch in one transaction and one statement, whatever
    /// tenants it spans: scoped to all of them, so a key names a row of its batch's tenants
    /// only. Returns, for each row this call marked, the seconds from its commit to now (the
    /// outbox lag).
    pub async fn mark_published_many(&self, keys: &[OutboxKey]) -> Result<Vec<f64>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let tenants = tenants_in_order(keys.iter().map(|k| k.tenant_id));
        let ids: Vec<i64> = keys.iter().map(|k| k.id).collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        set_tenants_generic(&tx, &tenants).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
        // The actions first, locked in (cycle_id, action_id) order as a report batch locks
        // them, so the two cannot deadlock; then rows and actions change in one statement.
        // Byte order (COLLATE "C"), as the batch sorts them in Rust: under the database's
        // collation `x.a_b` and `x.a.f` would come in the other order. No `status` test
        // here: with one, the planner walked `actions_status` over every 'pending' entry,
        // dead ones included (about 450 buffers a call at 10,000 tenants), instead of going
        // from the rows to their actions' keys (about 100). Locking an action the update
        // then leaves alone costs nothing.
        // An id names an outbox row or an action that is its own entry (V27), never both:
        // both draw from one sequence.
        let lock = tx.execute_cached(
            "SELECT 1 FROM actions a
              WHERE (a.cycle_id, a.action_id) IN (
                    SELECT o.cycle_id, o.action_id FROM outbox o
                     WHERE o.id = ANY($1) AND o.published_at IS NULL
                       AND o.action_id IS NOT NULL
                    UNION ALL
                    SELECT e.cycle_id, e.action_id FROM actions e
                     WHERE e.outbox_id = ANY($1) AND e.published_at IS NULL
                       AND e.message IS NOT NULL)
              ORDER BY a.cycle_id, a.action_id COLLATE \"C\"
              FOR UPDATE OF a",
            &params,
        );
        // An entry's own row takes its confirm time whatever its status (an executor may
        // report before the broker confirms), and `published` only from `pending`. It keeps
        // its message's address and drops what only a re-publish reads (V27). An outbox row
        // rarely carries an action now, so the planner took `o` for empty and walked
        // `actions_status` over every 'pending' entry, dead ones included (126 buffers, 1.4
        // ms a mark at 10,000 tenants); `COLLATE "C"` keeps that index out of its reach, and
        // it goes from `o` to the actions' keys.
        let mark = tx.query_cached(
            "WITH o AS (
                UPDATE outbox SET published_at = now()
                WHERE id = ANY($1) AND published_at IS NULL
                RETURNING tenant_id, cycle_id, action_id,
                          extract(epoch FROM now() - created_at)::float8 AS lag),
             a AS (
                UPDATE actions a SET status = 'published', updated_at = now()
                FROM o
                WHERE a.tenant_id = o.tenant_id AND a.cycle_id = o.cycle_id
                  AND a.action_id = o.action_id AND a.status = 'pending' COLLATE \"C\"),
             e AS (
                UPDATE actions SET published_at = now(),
                       status = CASE status WHEN 'pending' THEN 'published' ELSE status END,
                       message = message - 'headers' - 'head', updated_at = now()
                WHERE outbox_id = ANY($1) AND published_at IS NULL AND message IS NOT NULL
                RETURNING extract(epoch FROM now() - created_at)::float8 AS lag)
             SELECT lag FROM o UNION ALL SELECT lag FROM e",
            &params,
        );
        // Sent together, run in order: the second fails as 25P02 when the first did.
        let (locked, rows) = futures_util::join!(lock, mark);
        locked?;
        let lags = rows?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<f64>, _>>()?;
        tx.commit().await?;
        Ok(lags)
    }

    /// How many rows wait to be published, and the age in seconds of the oldest (0 if none).
    pub async fn outbox_backlog(&self) -> Result<(i64, f64), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                "SELECT pending, oldest_secs FROM revenue_os.outbox_backlog()",
                &[],
            )
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// A nack or a return: count the attempt, keep the row pending and release any claim so
    /// the next sweep (of any worker) may try again.
    pub async fn record_publish_failure(
        &self,
        key: OutboxKey,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, key.tenant_id).await?;
        tx.execute_cached(
            "WITH o AS (
                UPDATE outbox SET attempts = attempts + 1, last_error = $3, claimed_until = NULL
                 WHERE tenant_id = $1 AND id = $2 AND published_at IS NULL)
             UPDATE actions SET publish_attempts = publish_attempts + 1, publish_error = $3,
                                publish_claimed_until = NULL
              WHERE tenant_id = $1 AND outbox_id = $2 AND published_at IS NULL
                AND message IS NOT NULL",
            &[&key.tenant_id, &key.id, &reason],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn ids_of(keys: &[OutboxKey], tenant: Uuid) -> Vec<i64> {
    keys.iter()
        .filter(|k| k.tenant_id == tenant)
        .map(|k| k.id)
        .collect()
}
