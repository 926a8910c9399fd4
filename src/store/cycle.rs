//! `run_cycle`: one trigger, one transaction, one recorded outcome. The rules (whether to run,
//! what to decide, what to publish) come from the caller's `CyclePolicy`.

use super::assemble::assemble_in;
use super::cached::{Cached, prepare_all};
use super::tenant::set_tenant;
use super::webhooks;
use super::{
    CycleOutcome, CyclePolicy, CycleRequest, CycleStatus, LastCycle, OutboxRow, Store, StoreError,
    outbox, tenant_lock_key,
};
use crate::contract::{KernelError, KernelOutput, Notification, NotifyEvent};
use crate::telemetry::metrics;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::json;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

/// The cycle transaction's settings. `lock_timeout` below `database.statement_timeout_ms` (30 s
/// by default), so a cycle queued behind its tenant's lock fails as `lock_not_available`, a
/// retryable wait, not as a cancelled statement. And generic plans, for the reason
/// `tenant::set_tenants_generic` gives (here the lever read's: 2,545 plans of 23,998 calls).
const CYCLE_TX_SETTINGS: &str =
    "SET LOCAL lock_timeout = '20s'; SET LOCAL plan_cache_mode = force_generic_plan";

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
    /// One cycle in one transaction: advisory locks, idempotency, tenant check, the policy's
    /// admission, assembly, the policy's decision, then cycle + actions + outbox rows.
    ///
    /// The transaction is READ COMMITTED on purpose: every statement after the lock sees what
    /// the previous holder committed. (REPEATABLE READ would freeze the snapshot at the lock
    /// statement and miss the cycle another call just recorded.)
    pub async fn run_cycle(
        &self,
        req: &CycleRequest,
        now: DateTime<Utc>,
        policy: &dyn CyclePolicy,
    ) -> Result<CycleOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &[req]).await?;
        let outcome = cycle_in(&tx, req, now, policy).await?;
        tx.commit().await?;
        metrics::cycle_batch(1);
        Ok(outcome)
    }

    /// Several triggers' cycles in one transaction and one commit, each exactly as
    /// `run_cycle` would run it, in the order given and each under its own tenant's scope.
    /// Every tenant lock is taken up front in ascending key order, so two batches (or a batch
    /// and a single cycle, which holds one tenant) cannot deadlock. A later cycle of the batch
    /// sees what an earlier one wrote: the same message twice is one cycle and a replay, and
    /// the same tenant twice is spaced by `admit` as it would be one commit apart.
    ///
    /// Any error rolls the whole batch back and nothing of it is recorded: the caller runs
    /// the triggers one by one instead.
    pub async fn run_cycles(
        &self,
        batch: &[(&CycleRequest, &dyn CyclePolicy)],
        now: DateTime<Utc>,
    ) -> Result<Vec<CycleOutcome>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let reqs: Vec<&CycleRequest> = batch.iter().map(|(r, _)| *r).collect();
        lock(&tx, &reqs).await?;
        let mut out = Vec::with_capacity(batch.len());
        for (req, policy) in batch {
            out.push(cycle_in(&tx, req, now, *policy).await?);
        }
        tx.commit().await?;
        metrics::cycle_batch(batch.len());
        Ok(out)
    }
}

/// The advisory locks of `reqs`' cycles: every tenant's, in ascending key order, then every
/// message's (the tenant's own key space: message ids are scoped per tenant). Tenant before
/// message everywhere, and a message lock is only ever wanted under its tenant's, so no two
/// holders wait on each other. A holder that never finishes must not park every later
/// trigger: past `lock_timeout` the wait gives up (55P03, retryable).
async fn lock(tx: &Transaction<'_>, reqs: &[&CycleRequest]) -> Result<(), StoreError> {
    // A function scan yields the array in order, so the locks are taken in that order.
    const TENANTS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k";
    const MESSAGES: &str = "SELECT pg_advisory_xact_lock(hashtextextended(m, k))
                            FROM unnest($1::text[], $2::int8[]) AS u(m, k)";
    let keys: Vec<i64> = reqs.iter().map(|r| tenant_lock_key(r.tenant_id)).collect();
    let mut tenants = keys.clone();
    tenants.sort_unstable();
    tenants.dedup();
    let messages: Vec<&str> = reqs.iter().map(|r| r.message_id.as_str()).collect();
    // Sent together and run in the order sent: the settings, the tenants, the messages.
    prepare_all(tx, &[TENANTS, MESSAGES]).await?;
    let (by_tenant, by_message): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 2]) =
        ([&tenants], [&messages, &keys]);
    futures_util::try_join!(
        async { Ok::<_, StoreError>(tx.batch_execute(CYCLE_TX_SETTINGS).await?) },
        tx.execute_cached(TENANTS, &by_tenant),
        tx.execute_cached(MESSAGES, &by_message),
    )?;
    Ok(())
}

/// One cycle inside a transaction that holds its locks: the tenant's scope, idempotency,
/// tenant check, the policy's admission, assembly, the policy's decision, then cycle +
/// actions + outbox rows. The caller commits.
async fn cycle_in(
    tx: &deadpool_postgres::Transaction<'_>,
    req: &CycleRequest,
    now: DateTime<Utc>,
    policy: &dyn CyclePolicy,
) -> Result<CycleOutcome, StoreError> {
    let started = std::time::Instant::now();
    // The reads that decide whether and how the cycle runs, sent together (tokio-postgres
    // pipelines them on the connection) behind the scope they run in: one round trip where
    // there were six. None depends on another. The scope is the trigger's tenant, also when
    // it does not exist: its rejection is a row of that tenant id. The first error to arrive
    // is the first statement the server failed; the later ones only fail as 25P02 after it.
    let ((), replayed, last, approvals) = futures_util::try_join!(
        set_tenant(tx, req.tenant_id),
        replay(tx, req.tenant_id, &req.message_id),
        last_completed(tx, req.tenant_id),
        super::approvals::facts_in(tx, req.tenant_id),
    )?;
    if let Some(outcome) = replayed {
        return Ok(outcome);
    }
    // The tenant's row is what `approvals` reads its age from.
    let Some(approvals) = approvals else {
        reject(tx, req, now).await?;
        return Ok(CycleOutcome::UnknownTenant);
    };
    let verdict = policy
        .check(req)
        .map_err(|e| (CycleStatus::Failed, e))
        .and_then(|()| {
            policy
                .admit(last.as_ref(), now)
                .map_err(|e| (CycleStatus::Skipped, e))
        });
    let (status, result, trace, skip_reason) = match verdict {
        Err((status, refusal)) => (status, Err(refusal), None, None),
        Ok(()) => {
            let t = std::time::Instant::now();
            let (assembled, levers) = futures_util::try_join!(
                assemble_in(
                    tx,
                    req.tenant_id,
                    &req.trigger,
                    req.triggered_at,
                    req.window,
                ),
                super::reports::levers_in(tx, req.tenant_id),
            )?;
            metrics::stage("assemble", t.elapsed());
            // The tenant row was read under the lock above; it cannot vanish here.
            let Some(input) = assembled else {
                return Err(StoreError::Corrupt(format!(
                    "tenant {} disappeared inside its own lock",
                    req.tenant_id
                )));
            };
            let t = std::time::Instant::now();
            let (decided, trace) = policy.decide_explained(input, &levers, now, req.cycle_id);
            metrics::stage("decide", t.elapsed());
            match decided {
                Ok(out) => (CycleStatus::Completed, Ok(out), trace, None),
                Err(e) => match policy.skip_reason(&e) {
                    Some(r) => (CycleStatus::Skipped, Err(e), trace, Some(r)),
                    None => (CycleStatus::Failed, Err(e), trace, None),
                },
            }
        }
    };
    let persist_started = std::time::Instant::now();
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let recorded = Recorded {
        status,
        result: &result,
        trace: trace.as_deref(),
        skip_reason,
        now,
        duration_ms,
    };
    let super::Plan { messages, held } = policy.plan(req.cycle_id, &result, status, &approvals);
    // The actions' messages go with their actions rows (V27); the rest to the outbox.
    let (entries, messages): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| outbox::entry_message(m).is_some());
    let kept: Vec<_> = entries.iter().filter_map(outbox::entry_message).collect();
    // Sent together, one round trip where there were three or four, and run in the order
    // sent: the actions refer to the cycle and the outbox rows to the actions. Prepared
    // first, so that none waits for its Parse while a later one runs.
    prepare_all(
        tx,
        &[
            INSERT_CYCLE,
            INSERT_ACTIONS,
            INSERT_DQ,
            outbox::INSERT_ALL_SQL,
        ],
    )
    .await?;
    let ((), drawn, (), outboxed) = futures_util::try_join!(
        insert_cycle(tx, req, &recorded),
        async {
            match &result {
                Ok(out) => insert_actions(tx, req, out, &held, &kept).await,
                Err(_) => Ok(vec![]),
            }
        },
        async {
            match &result {
                Ok(out) => insert_data_quality_actions(tx, req, out).await,
                Err(_) => Ok(()),
            }
        },
        outbox::insert_all(tx, req.tenant_id, req.cycle_id, messages),
    )?;
    // The relay publishes in the plan's order: the actions, then the rest.
    let mut pending = Vec::with_capacity(entries.len() + outboxed.len());
    for m in entries {
        let id = drawn
            .iter()
            .find(|(a, _)| Some(a.as_str()) == m.action_id.as_deref())
            .map(|(_, id)| *id)
            .ok_or_else(|| {
                corrupt(
                    req.cycle_id,
                    format!("action message {} drew no outbox id", m.message_id),
                )
            })?;
        pending.push(outbox::inserted(id, req.tenant_id, Some(req.cycle_id), m));
    }
    pending.extend(outboxed);
    if let Ok(out) = &result {
        for (action_id, why) in &held {
            let Some(a) = out.actions.iter().find(|a| &a.action_id == action_id) else {
                continue;
            };
            let n = Notification::new(
                NotifyEvent::ActionHeld,
                format!("{}:{action_id}", req.cycle_id),
                Some(req.tenant_id),
                now,
            )
            .on_action(req.cycle_id, action_id)
            .with_details(webhooks::action_details(a, json!({ "reason": why })));
            webhooks::record(tx, &n).await?;
        }
    }
    // The commit is the caller's, shared by a batch: not part of this stage.
    metrics::stage("persist", persist_started.elapsed());
    Ok(CycleOutcome::Recorded {
        cycle_id: req.cycle_id,
        status,
        result: result.map(Box::new),
        pending,
        replayed: false,
    })
}

/// The stored outcome of this tenant's message_id seen before, if any. Message ids are the
/// tenant's own: another tenant's cycle with the same id is not this trigger's.
async fn replay(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    message_id: &str,
) -> Result<Option<CycleOutcome>, StoreError> {
    let Some(row) = tx
        .query_opt_cached(
            "SELECT cycle_id, status, output, error FROM cycles
             WHERE tenant_id = $1 AND message_id = $2",
            &[&tenant_id, &message_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let cycle_id: Uuid = row.try_get(0)?;
    let status_text: String = row.try_get(1)?;
    let status = CycleStatus::parse(&status_text)
        .ok_or_else(|| corrupt(cycle_id, format!("unknown status {status_text}")))?;
    let output: Option<serde_json::Value> = row.try_get(2)?;
    let error: Option<serde_json::Value> = row.try_get(3)?;
    let result = match (output, error) {
        (Some(o), None) => Ok(Box::new(
            serde_json::from_value::<KernelOutput>(o)
                .map_err(|e| corrupt(cycle_id, format!("output: {e}")))?,
        )),
        (_, Some(e)) => Err(serde_json::from_value::<KernelError>(e)
            .map_err(|e| corrupt(cycle_id, format!("error: {e}")))?),
        (None, None) => return Err(corrupt(cycle_id, "no output and no error".into())),
    };
    let pending: Vec<OutboxRow> = outbox::pending_of_cycle(tx, tenant_id, cycle_id).await?;
    Ok(Some(CycleOutcome::Recorded {
        cycle_id,
        status,
        result,
        pending,
        replayed: true,
    }))
}

fn corrupt(cycle_id: Uuid, what: String) -> StoreError {
    StoreError::Corrupt(format!("stored cycle {cycle_id} is unreadable: {what}"))
}

async fn reject(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let error = KernelError::tenant_not_found(req.tenant_id);
    tx.execute_cached(
        "INSERT INTO rejected_triggers (message_id, tenant_id, trigger, error_code, error,
                                        rejected_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, message_id) DO NOTHING",
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

/// The tenant's latest decided cycle (completed, or skipped with a reason), if any.
async fn last_completed(
    tx: &Transaction<'_>,
    tenant: Uuid,
) -> Result<Option<LastCycle>, StoreError> {
    let row = tx
        .query_opt_cached(
            "SELECT cycle_id, executed_at FROM cycles
             WHERE tenant_id = $1 AND (status = 'completed' OR skip_reason IS NOT NULL)
             ORDER BY executed_at DESC LIMIT 1",
            &[&tenant],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(LastCycle {
            cycle_id: r.try_get(0)?,
            executed_at: r.try_get(1)?,
        })),
    }
}

/// What a cycle row records of its run.
struct Recorded<'a> {
    status: CycleStatus,
    result: &'a Result<KernelOutput, KernelError>,
    /// The kernel's reasoning trace, when the policy gave one.
    trace: Option<&'a str>,
    /// Why a decided cycle was skipped (the policy's `skip_reason`).
    skip_reason: Option<&'static str>,
    now: DateTime<Utc>,
    duration_ms: i32,
}

const INSERT_CYCLE: &str =
    "INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source,
                         triggered_at, trigger, window_start, window_end, status, error_code,
                         error, binding_constraint, priority_metric, diagnosis, confidence,
                         executed_at, duration_ms, output, trace, skip_reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21)";

/// An action the cycle publishes is its own outbox entry (V27): its message is kept with it,
/// and its entry id drawn in the order the rows come, which is priority order.
const INSERT_ACTIONS: &str =
    "INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem, type,
                          target_metric, action, status, approval_reason, message, outbox_id)
     SELECT $1, $2, i, p, o, k, t, b, s, r, m,
            CASE WHEN m IS NOT NULL THEN revenue_os.outbox_id() END
       FROM UNNEST($3::text[], $4::int2[], $5::text[], $6::text[], $7::text[], $8::jsonb[],
                   $9::text[], $10::text[], $11::jsonb[])
            WITH ORDINALITY AS u(i, p, o, k, t, b, s, r, m, n)
      ORDER BY n
     RETURNING action_id, outbox_id";

const INSERT_DQ: &str =
    "INSERT INTO data_quality_actions (cycle_id, tenant_id, action_id, priority, issue_type,
                                       affected_metric, description, recommended_fix)
     SELECT $1, $2, * FROM UNNEST($3::text[], $4::int2[], $5::text[], $6::text[],
                                  $7::text[], $8::text[])";

async fn insert_cycle(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    rec: &Recorded<'_>,
) -> Result<(), StoreError> {
    // `Json` writes each document straight from its struct: no `serde_json::Value` tree is
    // built first (the output is the largest thing a cycle writes).
    let (output, error, code, summary) = match rec.result {
        Ok(out) => (Some(Json(out)), None, None, Some(&out.cycle_summary)),
        // A skip with a reason is not the error's code: nothing was invalid.
        Err(e) => (
            None,
            Some(Json(e)),
            rec.skip_reason.is_none().then(|| e.code.as_str()),
            None,
        ),
    };
    tx.execute_cached(
        INSERT_CYCLE,
        &[
            &req.cycle_id,
            &req.tenant_id,
            &req.message_id,
            &req.trigger.kind.as_str(),
            // Also inside the `trigger` jsonb: a copy kept for queries and small by contract
            // (the worker refuses a `trigger.source` over 200 bytes).
            &req.trigger.source,
            &req.triggered_at,
            &Json(&req.trigger),
            &req.window.start(),
            &req.window.end(),
            &rec.status.as_str(),
            &code,
            &error,
            &summary.map(|s| s.binding_constraint.as_str()),
            &summary.map(|s| s.priority_metric.as_str()),
            &summary.map(|s| s.diagnosis.as_str()),
            &summary.map(|s| s.confidence),
            &rec.now,
            &rec.duration_ms,
            &output,
            &rec.trace,
            &rec.skip_reason,
        ],
    )
    .await?;
    Ok(())
}

/// Inserts the output's actions, those with a message in `entries` as their own outbox
/// entries: returns each entry's `(action_id, outbox_id)`.
async fn insert_actions(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    out: &KernelOutput,
    held: &[(String, String)],
    entries: &[(&str, outbox::EntryMessage<'_>)],
) -> Result<Vec<(String, i64)>, StoreError> {
    // Priority order (stable), so the entries' ids follow it as their messages do.
    let mut actions: Vec<_> = out.actions.iter().collect();
    actions.sort_by_key(|a| a.priority);
    let ids: Vec<&str> = actions.iter().map(|a| a.action_id.as_str()).collect();
    let prio: Vec<i16> = actions.iter().map(|a| i16::from(a.priority)).collect();
    let owner: Vec<&str> = actions.iter().map(|a| a.owner_subsystem.as_str()).collect();
    let kind: Vec<&str> = actions.iter().map(|a| a.kind.as_str()).collect();
    let metric: Vec<&str> = actions.iter().map(|a| a.target_metric.as_str()).collect();
    let body: Vec<Json<_>> = actions.iter().map(|a| Json(*a)).collect();
    let message: Vec<Option<Json<&outbox::EntryMessage<'_>>>> = ids
        .iter()
        .map(|id| entries.iter().find(|(e, _)| e == id).map(|(_, m)| Json(m)))
        .collect();
    let reason_of = |id: &str| held.iter().find(|(h, _)| h == id).map(|(_, r)| r.as_str());
    let status: Vec<&str> = ids
        .iter()
        .map(|id| match reason_of(id) {
            Some(_) => "pending_approval",
            None => "pending",
        })
        .collect();
    let reason: Vec<Option<&str>> = ids.iter().map(|id| reason_of(id)).collect();
    let rows = tx
        .query_cached(
            INSERT_ACTIONS,
            &[
                &req.cycle_id,
                &req.tenant_id,
                &ids,
                &prio,
                &owner,
                &kind,
                &metric,
                &body,
                &status,
                &reason,
                &message,
            ],
        )
        .await?;
    let mut drawn = Vec::with_capacity(entries.len());
    for r in &rows {
        if let Some(id) = r.try_get::<_, Option<i64>>(1)? {
            drawn.push((r.try_get(0)?, id));
        }
    }
    Ok(drawn)
}

async fn insert_data_quality_actions(
    tx: &Transaction<'_>,
    req: &CycleRequest,
    out: &KernelOutput,
) -> Result<(), StoreError> {
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
    tx.execute_cached(
        INSERT_DQ,
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
