//! What the capacity benchmark reads back: how far a batch of triggers got, and when each
//! one's last action was confirmed. Counting only; the benchmark decides what it means.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};

/// One trigger's cycle as the benchmark measures it.
#[derive(Debug, Clone)]
pub struct BenchCycle {
    pub message_id: String,
    /// Completed, or skipped with nothing to do: decided either way.
    pub completed: bool,
    /// The broker's confirm of the last message the cycle published (actions, cycle event).
    pub last_confirmed: Option<DateTime<Utc>>,
}

impl Store {
    /// Cycles recorded for these message ids, and messages still unpublished (any tenant,
    /// either table: `revenue_os.outbox_backlog`).
    pub async fn bench_progress(&self, message_ids: &[&str]) -> Result<(i64, i64), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM cycles WHERE message_id = ANY($1)),
                        (SELECT pending FROM revenue_os.outbox_backlog())",
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
                // Decided: completed, or skipped with nothing to do (a cycle right after the
                // tenant's last, whose actions are still in flight). Its latency runs to the
                // last confirm of what it published: its actions and its cycle event.
                "SELECT c.message_id, c.status = 'completed' OR c.skip_reason IS NOT NULL,
                        GREATEST(
                          (SELECT max(o.published_at) FROM outbox o
                            WHERE o.cycle_id = c.cycle_id),
                          (SELECT max(a.published_at) FROM actions a
                            WHERE a.cycle_id = c.cycle_id))
                   FROM cycles c
                  WHERE c.message_id = ANY($1)",
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

/// One action the morning benchmark seeds as applied (a real kernel output's action).
#[derive(Debug, Clone)]
pub struct SeedAction {
    pub action_id: String,
    pub priority: i16,
    pub owner: String,
    pub kind: String,
    pub target_metric: String,
    pub body: serde_json::Value,
}

/// What one morning left behind, read back by the benchmark.
#[derive(Debug, Clone, Default)]
pub struct MorningFacts {
    /// Cycles of the morning's triggers (`message_id` under the load's prefix, or a deviation's).
    pub cycles: i64,
    pub cycles_completed: i64,
    /// Tenants with more than one cycle this morning.
    pub tenants_doubled: i64,
    /// Actions of those cycles, and how many still wait for their publish confirm.
    pub actions: i64,
    pub actions_unpublished: i64,
    pub outbox_pending: i64,
    /// Evaluations of the seeded watched actions on the new day.
    pub evaluations: i64,
    pub deviations: i64,
    /// The load follow-up's end, and the watchdog's last evaluation of the new day.
    pub followed_up_at: Option<DateTime<Utc>>,
    pub last_evaluation: Option<DateTime<Utc>>,
    pub first_trigger_queued: Option<DateTime<Utc>>,
    pub last_confirmed: Option<DateTime<Utc>>,
    /// The load's first scheduled trigger: the follow-up queues them once detection is done.
    pub first_scheduled_queued: Option<DateTime<Utc>>,
}

impl Store {
    /// Seeds, for each tenant, one completed cycle (`executed_at`) whose `actions` were
    /// applied at `applied_at` and are watched from `watched_as_of`. Bench data only: it
    /// writes what a cycle and its executor reports would have, without running them.
    #[allow(clippy::too_many_arguments)]
    pub async fn bench_seed_applied(
        &self,
        tenants: &[uuid::Uuid],
        actions: &[SeedAction],
        output: &serde_json::Value,
        window: (chrono::NaiveDate, chrono::NaiveDate),
        executed_at: DateTime<Utc>,
        applied_at: DateTime<Utc>,
        watched_as_of: chrono::NaiveDate,
    ) -> Result<u64, StoreError> {
        let ids: Vec<&str> = actions.iter().map(|a| a.action_id.as_str()).collect();
        let prio: Vec<i16> = actions.iter().map(|a| a.priority).collect();
        let owner: Vec<&str> = actions.iter().map(|a| a.owner.as_str()).collect();
        let kind: Vec<&str> = actions.iter().map(|a| a.kind.as_str()).collect();
        let metric: Vec<&str> = actions.iter().map(|a| a.target_metric.as_str()).collect();
        let body: Vec<&serde_json::Value> = actions.iter().map(|a| &a.body).collect();
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "WITH c AS (
                   INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type,
                                       trigger_source, triggered_at, trigger, window_start,
                                       window_end, status, binding_constraint, priority_metric,
                                       diagnosis, confidence, executed_at, duration_ms, output)
                   SELECT gen_random_uuid(), t, 'bench-seed:' || t, 'scheduled', 'bench', $1,
                          '{\"type\":\"scheduled\",\"source\":\"bench\"}', $2, $3, 'completed',
                          $4::jsonb->'cycle_summary'->>'binding_constraint',
                          $4::jsonb->'cycle_summary'->>'priority_metric',
                          $4::jsonb->'cycle_summary'->>'diagnosis',
                          ($4::jsonb->'cycle_summary'->>'confidence')::float8, $1, 1, $4
                     FROM unnest($5::uuid[]) AS t
                   RETURNING cycle_id, tenant_id)
                 INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem,
                                      type, target_metric, action, status, applied_at,
                                      watched_as_of)
                 SELECT c.cycle_id, c.tenant_id, a.id, a.prio, a.owner, a.kind, a.metric, a.body,
                        'applied', $6, $7
                   FROM c CROSS JOIN unnest($8::text[], $9::int2[], $10::text[], $11::text[],
                                            $12::text[], $13::jsonb[])
                        AS a(id, prio, owner, kind, metric, body)",
                &[
                    &executed_at,
                    &window.0,
                    &window.1,
                    output,
                    &tenants,
                    &applied_at,
                    &watched_as_of,
                    &ids,
                    &prio,
                    &owner,
                    &kind,
                    &metric,
                    &body,
                ],
            )
            .await?;
        Ok(n)
    }

    /// What of the morning of `load_id` is still moving, without counting its cycles: the
    /// messages not yet confirmed (outbox rows and action entries, `outbox_backlog`) and
    /// whether the follow-up is done. Reads of the unpublished entries' partial indexes, so it
    /// can be polled every few seconds at 100,000 tenants.
    pub async fn bench_morning_backlog(&self, load_id: &str) -> Result<(i64, bool), StoreError> {
        let client = self.pool.get().await?;
        let r = client
            .query_one(
                "SELECT (SELECT pending FROM revenue_os.outbox_backlog()),
                        (SELECT followed_up_at IS NOT NULL FROM loads WHERE load_id = $1)",
                &[&load_id],
            )
            .await?;
        Ok((
            r.try_get(0)?,
            r.try_get::<_, Option<bool>>(1)?.unwrap_or(false),
        ))
    }

    /// The cycles of the morning of `load_id` since `since` (its follow-up's triggers and the
    /// deviations'). It reads every one of them: at 100,000 tenants about a second of the
    /// database's time, so `settle` counts only when nothing else is left.
    pub async fn bench_morning_cycles(
        &self,
        load_id: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let prefix = format!("load:{load_id}:%");
        let r = client
            .query_one(
                "SELECT count(*) FROM cycles WHERE executed_at >= $2
                    AND (message_id LIKE $1 OR trigger_type = 'metric_deviation')",
                &[&prefix, &since],
            )
            .await?;
        Ok(r.try_get(0)?)
    }

    /// Whether any cycle has been recorded since `since`: the first it meets ends the read.
    pub async fn bench_any_cycle_since(&self, since: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let r = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM cycles WHERE executed_at >= $1)",
                &[&since],
            )
            .await?;
        Ok(r.try_get(0)?)
    }

    /// Actions published and not yet reported applied (or refused, or failed): what the
    /// executors' reports still have to record.
    pub async fn bench_actions_awaiting_reports(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let r = client
            .query_one(
                "SELECT count(*) FROM actions WHERE status IN ('published', 'acknowledged')",
                &[],
            )
            .await?;
        Ok(r.try_get(0)?)
    }

    /// The morning of the load `load_id` (its follow-up's triggers are `load:<id>:<tenant>`),
    /// metric day `as_of`, for triggers after `since`. It scans the morning's cycles, actions,
    /// outbox and evaluations, so it runs without the session's statement timeout.
    pub async fn bench_morning(
        &self,
        load_id: &str,
        as_of: chrono::NaiveDate,
        since: DateTime<Utc>,
    ) -> Result<MorningFacts, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        let prefix = format!("load:{load_id}:%");
        let r = tx
            .query_one(
                "WITH m AS (
                   SELECT cycle_id, tenant_id, status FROM cycles
                    WHERE executed_at >= $3
                      AND (message_id LIKE $1 OR trigger_type = 'metric_deviation')),
                 a AS (SELECT x.status, x.published_at FROM actions x JOIN m USING (cycle_id)),
                 -- The watched actions the bench seeded (the morning's own cycles' actions,
                 -- once applied, are watched too, but they are not the morning's watch).
                 seeded AS (SELECT cycle_id FROM cycles WHERE message_id LIKE 'bench-seed:%')
                 SELECT (SELECT count(*) FROM m),
                        (SELECT count(*) FROM m WHERE status = 'completed'),
                        (SELECT count(*) FROM (SELECT tenant_id FROM m GROUP BY tenant_id
                                                HAVING count(*) > 1) d),
                        (SELECT count(*) FROM a),
                        (SELECT count(*) FROM a WHERE status = 'pending'),
                        (SELECT pending FROM revenue_os.outbox_backlog()),
                        (SELECT count(*) FROM watchdog_evaluations e JOIN seeded USING (cycle_id)
                          WHERE e.as_of = $2),
                        (SELECT count(*) FROM deviations WHERE day = $2),
                        (SELECT followed_up_at FROM loads WHERE load_id = $4),
                        (SELECT max(e.evaluated_at) FROM watchdog_evaluations e
                           JOIN seeded USING (cycle_id) WHERE e.as_of = $2),
                        (SELECT min(created_at) FROM outbox
                          WHERE created_at >= $3 AND action_id IS NULL
                            AND (message_id LIKE $1 OR message_id LIKE 'deviation:%')),
                        GREATEST((SELECT max(published_at) FROM a),
                                 (SELECT max(o.published_at) FROM outbox o JOIN m USING (cycle_id)
                                   WHERE o.action_id IS NOT NULL)),
                        (SELECT min(created_at) FROM outbox
                          WHERE created_at >= $3 AND action_id IS NULL AND message_id LIKE $1)",
                &[&prefix, &as_of, &since, &load_id],
            )
            .await?;
        tx.commit().await?;
        Ok(MorningFacts {
            cycles: r.try_get(0)?,
            cycles_completed: r.try_get(1)?,
            tenants_doubled: r.try_get(2)?,
            actions: r.try_get(3)?,
            actions_unpublished: r.try_get(4)?,
            outbox_pending: r.try_get(5)?,
            evaluations: r.try_get(6)?,
            deviations: r.try_get(7)?,
            followed_up_at: r.try_get(8)?,
            last_evaluation: r.try_get(9)?,
            first_trigger_queued: r.try_get(10)?,
            last_confirmed: r.try_get(11)?,
            first_scheduled_queued: r.try_get(12)?,
        })
    }

    /// Each of the product's largest tables with its total size (heap, indexes, TOAST), bytes.
    pub async fn bench_table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT c.relname::text,
                        CASE WHEN c.relkind = 'p'
                             THEN (SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)
                                     FROM pg_inherits i WHERE i.inhparent = c.oid)::int8
                             ELSE pg_total_relation_size(c.oid) END
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                    AND NOT c.relispartition
                  ORDER BY 2 DESC, 1 LIMIT 12",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl Store {
    /// The server settings a morning's figures depend on, as the server reports them, so that
    /// a run says what it ran on.
    pub async fn bench_server_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT name, current_setting(name) FROM pg_settings
                  WHERE name IN ('autovacuum', 'autovacuum_vacuum_scale_factor',
                                 'checkpoint_timeout', 'max_wal_size', 'shared_buffers',
                                 'synchronous_commit', 'fsync', 'server_version')
                  ORDER BY name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The database's raw binary COPY rate for metric rows: `rows` generated rows into a
    /// temporary table shaped like the loader's staging table, in one transaction (rolled
    /// back). Returns the seconds the COPY took.
    pub async fn bench_copy(&self, rows: u64) -> Result<f64, StoreError> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::{ToSql, Type};
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(
            "CREATE TEMP TABLE bench_copy (tenant_id uuid, metric_id text, date date,
                                           value float8, dimension jsonb) ON COMMIT DROP",
        )
        .await?;
        let started = std::time::Instant::now();
        let sink = tx.copy_in("COPY bench_copy FROM STDIN BINARY").await?;
        let types = [
            Type::UUID,
            Type::TEXT,
            Type::DATE,
            Type::FLOAT8,
            Type::JSONB,
        ];
        let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
        let dim = serde_json::json!({});
        for i in 0..rows {
            let tenant = uuid::Uuid::from_u128(u128::from(i / 10));
            let value = i as f64;
            let row: [&(dyn ToSql + Sync); 5] = [&tenant, &"pipeline_total", &day, &value, &dim];
            w.as_mut().write(&row).await?;
        }
        w.finish().await?;
        let seconds = started.elapsed().as_secs_f64();
        tx.rollback().await?;
        Ok(seconds)
    }
}

impl Store {
    /// Marks every committed load as followed up: the benchmark's seeded history is not news
    /// for a worker to act on.
    pub async fn bench_settle_loads(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE loads SET followed_up_at = now()
                  WHERE committed_at IS NOT NULL AND followed_up_at IS NULL",
                &[],
            )
            .await?)
    }

    /// Fresh statistics and vacuumed tables after seeding, as autovacuum would leave them in
    /// time. VACUUM too: the seed replaced every tenant's snapshots, and on a server with
    /// autovacuum off (as this project's CI server is) the morning would start on their dead
    /// rows. Without the session's statement timeout: at 100,000 tenants it takes minutes.
    pub async fn bench_analyze(&self) -> Result<(), StoreError> {
        // Out of the pool: VACUUM cannot run in a transaction, so the timeout is the
        // session's, and a session without one must not go back to the pool.
        let client = deadpool_postgres::Object::take(self.pool.get().await?);
        client.batch_execute("SET statement_timeout = 0").await?;
        // VACUUM refuses to run inside a multi-statement string.
        Ok(client.batch_execute("VACUUM (ANALYZE)").await?)
    }
}
