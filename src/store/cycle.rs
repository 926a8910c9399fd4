//! `run_cycle`: one trigger, one transaction, one recorded outcome.

use super::assemble::{assemble_in, default_window, tenant_not_found, window_dates};
use super::{
    CycleOutcome, CycleRequest, CycleStatus, OutboxPlan, OutboxRow, Store, StoreError, outbox,
    tenant_lock_key,
};
use crate::catalog::Catalog;
use crate::config::KernelSettings;
use crate::contract::{ErrorCode, KernelError, KernelOutput, check_input, parse_timestamp};
use crate::kernel;
use crate::telemetry::metrics;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;
use tokio_postgres::Transaction;
use uuid::Uuid;

const LOCK_TIMEOUT_SQL: &str = "SET LOCAL lock_timeout = '60s'";

impl CycleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleStatus::Completed => "completed",
            CycleStatus::Failed => "failed",
            CycleStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "completed" => Some(CycleStatus::Completed),
            "failed" => Some(CycleStatus::Failed),
            "skipped" => Some(CycleStatus::Skipped),
            _ => None,
        }
    }
}

impl Store {
    /// One cycle in one transaction: advisory lock, idempotency, tenant check, interval check,
    /// assemble, `kernel::decide`, persist cycle + actions + data-quality actions + outbox.
    ///
    /// The transaction is READ COMMITTED on purpose: every statement after the lock sees what
    /// the previous holder committed. (REPEATABLE READ would freeze the snapshot at the lock
    /// statement and miss the cycle another call just recorded.)
    pub async fn run_cycle(
        &self,
        req: &CycleRequest,
        catalog: &Catalog,
        settings: &KernelSettings,
        now: DateTime<Utc>,
        plan: OutboxPlan<'_>,
    ) -> Result<CycleOutcome, StoreError> {
        let started = std::time::Instant::now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A holder that never finishes must not park every later trigger: give up (55P03,
        // retryable) instead.
        tx.batch_execute(LOCK_TIMEOUT_SQL).await?;
        // Tenant first, then message: every caller takes them in this order, so no deadlock.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&tenant_lock_key(req.tenant_id)],
        )
        .await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&req.message_id],
        )
        .await?;

        if let Some(outcome) = replay(&tx, req.tenant_id, &req.message_id).await? {
            tx.commit().await?;
            return Ok(outcome);
        }

        let exists = tx
            .query_opt(
                "SELECT 1 FROM tenants WHERE tenant_id = $1",
                &[&req.tenant_id],
            )
            .await?
            .is_some();
        if !exists {
            let error = tenant_not_found(req.tenant_id);
            reject(&tx, req, &error, now).await?;
            tx.commit().await?;
            return Ok(CycleOutcome::Rejected { error });
        }

        let window = req
            .analysis_window
            .clone()
            .unwrap_or_else(|| default_window(trigger_time(req, now)));
        let result = match too_recent(&tx, req.tenant_id, settings, now).await? {
            Some(error) => Err(error),
            None => match timed(
                "assemble",
                assemble_in(&tx, req.tenant_id, &req.trigger, &window),
            )
            .await
            {
                Ok(Some(input)) => {
                    let t = std::time::Instant::now();
                    let params = kernel::KernelParams {
                        stale_after_days: i32::try_from(settings.stale_after_days)
                            .unwrap_or(i32::MAX),
                        ..Default::default()
                    };
                    let decided = check_input(input, catalog, now).and_then(|c| {
                        kernel::decide_with(&c, catalog, now, req.cycle_id, &params, None)
                    });
                    metrics::stage("decide", t.elapsed());
                    decided
                }
                Ok(None) => Err(tenant_not_found(req.tenant_id)),
                Err(StoreError::Kernel(e)) => Err(e),
                Err(e) => return Err(e),
            },
        };
        let status = match &result {
            Ok(_) => CycleStatus::Completed,
            Err(e) if e.code == ErrorCode::CycleTooRecent => CycleStatus::Skipped,
            Err(_) => CycleStatus::Failed,
        };
        let persist_started = std::time::Instant::now();
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        insert_cycle(&tx, req, &window, status, &result, now, duration_ms).await?;
        if let Ok(out) = &result {
            insert_actions(&tx, req, out).await?;
        }
        let mut pending = Vec::new();
        for m in plan(req.cycle_id, &result, status) {
            pending.push(outbox::insert(&tx, req.tenant_id, req.cycle_id, &m).await?);
        }
        tx.commit().await?;
        metrics::stage("persist", persist_started.elapsed());
        Ok(CycleOutcome::Recorded {
            cycle_id: req.cycle_id,
            status,
            result: result.map(Box::new),
            pending,
            replayed: false,
        })
    }
}

/// The default window is relative to when the trigger was raised, not when a backlog or a
/// replay gets to it.
fn trigger_time(req: &CycleRequest, now: DateTime<Utc>) -> DateTime<Utc> {
    parse_timestamp(&req.trigger.triggered_at).unwrap_or(now)
}

/// Awaits `fut`, recording its duration as a cycle stage.
async fn timed<T>(stage: &'static str, fut: impl std::future::Future<Output = T>) -> T {
    let t = std::time::Instant::now();
    let out = fut.await;
    metrics::stage(stage, t.elapsed());
    out
}

/// The stored outcome of a message_id seen before, if any.
async fn replay(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    message_id: &str,
) -> Result<Option<CycleOutcome>, StoreError> {
    if let Some(row) = tx
        .query_opt(
            "SELECT cycle_id, tenant_id, status, output, error FROM cycles WHERE message_id = $1",
            &[&message_id],
        )
        .await?
    {
        let cycle_id: Uuid = row.try_get(0)?;
        let tenant: Uuid = row.try_get(1)?;
        if tenant != tenant_id {
            // Never answer one tenant with another's cycle: a publisher reused an id.
            return Err(StoreError::Kernel(
                KernelError::new(
                    ErrorCode::InvalidInput,
                    format!("message_id {message_id} already belongs to another tenant's cycle"),
                )
                .with("message_id", json!(message_id)),
            ));
        }
        let status_text: String = row.try_get(2)?;
        let status = CycleStatus::parse(&status_text)
            .ok_or_else(|| corrupt(cycle_id, format!("unknown status {status_text}")))?;
        let output: Option<serde_json::Value> = row.try_get(3)?;
        let error: Option<serde_json::Value> = row.try_get(4)?;
        let result = match (output, error) {
            (Some(o), None) => Ok(Box::new(
                serde_json::from_value::<KernelOutput>(o)
                    .map_err(|e| corrupt(cycle_id, format!("output: {e}")))?,
            )),
            (_, Some(e)) => Err(serde_json::from_value::<KernelError>(e)
                .map_err(|e| corrupt(cycle_id, format!("error: {e}")))?),
            (None, None) => return Err(corrupt(cycle_id, "no output and no error".into())),
        };
        let pending: Vec<OutboxRow> = outbox::pending_of_cycle(tx, tenant, cycle_id).await?;
        return Ok(Some(CycleOutcome::Recorded {
            cycle_id,
            status,
            result,
            pending,
            replayed: true,
        }));
    }
    Ok(None)
}

fn corrupt(cycle_id: Uuid, what: String) -> StoreError {
    StoreError::Kernel(KernelError::internal(format!(
        "stored cycle {cycle_id} is unreadable: {what}"
    )))
}

async fn reject(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    error: &KernelError,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO rejected_triggers (message_id, tenant_id, trigger, error_code, error,
                                        rejected_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
        &[
            &req.message_id,
            &req.tenant_id,
            &json!(req.trigger),
            &error.code.as_str(),
            &json!(error),
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// CYCLE_TOO_RECENT when the tenant's last completed cycle is younger than the interval.
async fn too_recent(
    tx: &Transaction<'_>,
    tenant: Uuid,
    settings: &KernelSettings,
    now: DateTime<Utc>,
) -> Result<Option<KernelError>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT cycle_id, executed_at FROM cycles
             WHERE tenant_id = $1 AND status = 'completed'
             ORDER BY executed_at DESC LIMIT 1",
            &[&tenant],
        )
        .await?
    else {
        return Ok(None);
    };
    let last_id: Uuid = row.try_get(0)?;
    let last_at: DateTime<Utc> = row.try_get(1)?;
    let interval = Duration::hours(i64::from(settings.min_cycle_interval_hours));
    let next = last_at + interval;
    if now >= next {
        return Ok(None);
    }
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(Some(
        KernelError::new(
            ErrorCode::CycleTooRecent,
            format!(
                "last completed cycle ran at {}; the next may run from {}",
                ts(last_at),
                ts(next)
            ),
        )
        .with("last_cycle_id", json!(last_id.to_string()))
        .with("last_executed_at", json!(ts(last_at)))
        .with("next_allowed_at", json!(ts(next)))
        .with(
            "min_cycle_interval_hours",
            json!(settings.min_cycle_interval_hours),
        ),
    ))
}

async fn insert_cycle(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    window: &crate::contract::AnalysisWindow,
    status: CycleStatus,
    result: &Result<KernelOutput, KernelError>,
    now: DateTime<Utc>,
    duration_ms: i32,
) -> Result<(), StoreError> {
    // A window that does not parse is stored as the default one; its error is in `error`.
    let (start, end) = window_dates(window)
        .or_else(|_| window_dates(&default_window(trigger_time(req, now))))
        .map_err(StoreError::Kernel)?;
    let (output, error, code, summary) = match result {
        Ok(out) => (Some(json!(out)), None, None, Some(&out.cycle_summary)),
        Err(e) => (None, Some(json!(e)), Some(e.code.as_str()), None),
    };
    tx.execute(
        "INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source,
                             triggered_at, trigger, window_start, window_end, status, error_code,
                             error, binding_constraint, priority_metric, diagnosis, confidence,
                             executed_at, duration_ms, output)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19)",
        &[
            &req.cycle_id,
            &req.tenant_id,
            &req.message_id,
            &req.trigger.kind.as_str(),
            &req.trigger.source,
            &parse_timestamp(&req.trigger.triggered_at),
            &json!(req.trigger),
            &start,
            &end,
            &status.as_str(),
            &code,
            &error,
            &summary.map(|s| s.binding_constraint.as_str()),
            &summary.map(|s| s.priority_metric.as_str()),
            &summary.map(|s| s.diagnosis.as_str()),
            &summary.map(|s| s.confidence),
            &now,
            &duration_ms,
            &output,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_actions(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    out: &KernelOutput,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = out.actions.iter().map(|a| a.action_id.as_str()).collect();
    let prio: Vec<i16> = out.actions.iter().map(|a| i16::from(a.priority)).collect();
    let owner: Vec<&str> = out
        .actions
        .iter()
        .map(|a| a.owner_subsystem.as_str())
        .collect();
    let kind: Vec<&str> = out.actions.iter().map(|a| a.kind.as_str()).collect();
    let metric: Vec<&str> = out
        .actions
        .iter()
        .map(|a| a.target_metric.as_str())
        .collect();
    let body: Vec<serde_json::Value> = out.actions.iter().map(|a| json!(a)).collect();
    tx.execute(
        "INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem, type,
                              target_metric, action)
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::int2[], $5::text[], $6::text[],
                                      $7::text[], $8::jsonb[])",
        &[
            &req.cycle_id,
            &req.tenant_id,
            &ids,
            &prio,
            &owner,
            &kind,
            &metric,
            &body,
        ],
    )
    .await?;
    let dq = out.data_quality_actions.as_deref().unwrap_or_default();
    if dq.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = dq.iter().map(|a| a.action_id.as_str()).collect();
    let prio: Vec<i16> = dq.iter().map(|a| i16::from(a.priority)).collect();
    let issue: Vec<&str> = dq.iter().map(|a| a.issue_type.as_str()).collect();
    let metric: Vec<&str> = dq.iter().map(|a| a.affected_metric.as_str()).collect();
    let desc: Vec<&str> = dq.iter().map(|a| a.description.as_str()).collect();
    let fix: Vec<&str> = dq.iter().map(|a| a.recommended_fix.as_str()).collect();
    tx.execute(
        "INSERT INTO data_quality_actions (cycle_id, tenant_id, action_id, priority, issue_type,
                                           affected_metric, description, recommended_fix)
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::int2[], $5::text[], $6::text[],
                                      $7::text[], $8::text[])",
        &[
            &req.cycle_id,
            &req.tenant_id,
            &ids,
            &prio,
            &issue,
            &metric,
            &desc,
            &fix,
        ],
    )
    .await?;
    Ok(())
}
