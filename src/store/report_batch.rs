//! Executors' reports recorded set-wise: a batch (or a lone report, a batch of one) is judged
//! report by report in Rust, then read and written with one statement per table instead of
//! four or five per report. At 100,000 tenants the results consumer records about ten
//! reports per cycle, and their round trips were most of the database's work in the morning.

use super::reports::{
    ActionFacts, Judgement, ReportOutcome, ReportPolicy, ReportResult, ResultRows,
};
use super::tenant::{cycle_tenant, set_tenants_generic, tenants_in_order};
use super::{Store, StoreError};
use crate::contract::{ActionResult, ActionStatus, Report, Subject};
use chrono::{DateTime, SubsecRound, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

type Key<'a> = (Uuid, &'a str);

/// What the batch leaves on one action: its last status, and the last applied values and
/// outcome any of its reports set. One row version however many reports it had.
#[derive(Default)]
struct ActionChange {
    moved: bool,
    status: Option<ActionStatus>,
    applied: Option<super::reports::AppliedChange>,
    outcome: Option<&'static str>,
}

/// The rows of one report to insert into `action_reports`.
struct ReportRow<'a> {
    report: &'a Report,
    received_at: DateTime<Utc>,
    before: ActionStatus,
    after: ActionStatus,
    result: ReportResult,
}

impl Store {
    /// Records one report and applies the policy's judgement, in one transaction holding the
    /// action's row lock, so concurrent reports on one action are judged one after another.
    pub async fn record_report(
        &self,
        report: &Report,
        received_at: DateTime<Utc>,
        policy: &dyn ReportPolicy,
    ) -> Result<ReportOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match record_batch(&tx, &[(report, received_at)], policy).await {
            Ok(mut out) => {
                tx.commit().await?;
                out.pop()
                    .ok_or_else(|| StoreError::Corrupt("a report without an outcome".into()))
            }
            // Recorded before: the transaction is dropped, so nothing of this one is written.
            Err(StoreError::Conflict(_)) => Ok(ReportOutcome::Duplicate),
            Err(e) => Err(e),
        }
    }

    /// Several reports in one transaction and one commit, each exactly as `record_report`
    /// would record it under its own tenant's scope (one statement per table for the whole
    /// batch). Reports on one action keep the order given, and a later one is
    /// judged on what an earlier one left, so `acknowledged` then `applied` is judged in that
    /// order. Across actions they go in action order, so two batches take their action locks
    /// in the same order. The outcomes come back in the order given. Any error rolls the whole
    /// batch back and nothing of it is recorded: the caller records the reports one by one
    /// instead.
    pub async fn record_reports(
        &self,
        batch: &[(&Report, DateTime<Utc>)],
        policy: &dyn ReportPolicy,
    ) -> Result<Vec<ReportOutcome>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let out = record_batch(&tx, batch, policy).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// Records `batch` inside `tx` (not yet scoped to any tenant) and returns each report's
/// outcome in the order given. Reports go in (cycle_id, action_id) order, stable, so those on
/// one action keep their order and a later one is judged on what an earlier one left. Action
/// rows are locked in that order in one statement, as `mark_published_many` locks them.
///
/// Repeats are rare (a redelivery after a crash), so the batch does not look for them
/// first: a report recorded before makes the insert's `ON CONFLICT` skip a row, the batch
/// fails as `StoreError::Conflict`, and the caller records the reports one by one, each with
/// its own check. (Looking first cost a statement per batch whose cached plan, made while
/// `action_reports` was small, scanned the whole table.)
async fn record_batch(
    tx: &Transaction<'_>,
    batch: &[(&Report, DateTime<Utc>)],
    policy: &dyn ReportPolicy,
) -> Result<Vec<ReportOutcome>, StoreError> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| key_of(batch[i].0));
    let mut keys: Vec<Key<'_>> = order.iter().map(|&i| key_of(batch[i].0)).collect();
    keys.dedup();
    let tenants = tenants_in_order(batch.iter().map(|(r, _)| r.tenant_id));
    let cycles: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let actions: Vec<&str> = keys.iter().map(|k| k.1).collect();

    // Prepared first (a no-op once the connection has it), then sent behind the scope: each
    // is sent when first polled, so the lock runs in the batch's scope.
    let lock = tx
        .prepare_cached(
            "SELECT a.cycle_id, a.action_id, a.tenant_id, a.status, a.action FROM actions a
              WHERE (a.cycle_id, a.action_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
              ORDER BY a.cycle_id, a.action_id COLLATE \"C\"
              FOR UPDATE OF a",
        )
        .await?;
    let lock_params: [&(dyn ToSql + Sync); 2] = [&cycles, &actions];
    let (scope, locked) = futures_util::join!(
        set_tenants_generic(tx, &tenants),
        tx.query(&lock, &lock_params)
    );
    scope?;
    let mut facts: HashMap<(Uuid, String), ActionFacts> = HashMap::with_capacity(keys.len());
    for r in locked? {
        let cycle_id: Uuid = r.try_get(0)?;
        let action_id: String = r.try_get(1)?;
        let status_text: String = r.try_get(3)?;
        let status = ActionStatus::parse(&status_text)
            .ok_or_else(|| StoreError::Corrupt(format!("action status '{status_text}'")))?;
        let action = serde_json::from_value(r.try_get(4)?)
            .map_err(|e| StoreError::Corrupt(format!("stored action {action_id}: {e}")))?;
        facts.insert(
            (cycle_id, action_id.clone()),
            ActionFacts {
                tenant_id: r.try_get(2)?,
                cycle_id,
                action_id,
                status,
                action,
            },
        );
    }
    // Repeats inside the batch; a repeat of an event recorded earlier fails the insert below.
    let mut recorded: HashSet<(&str, &str)> = HashSet::new();

    let mut out: Vec<Option<ReportOutcome>> = vec![None; batch.len()];
    let mut rows: Vec<ReportRow<'_>> = Vec::with_capacity(batch.len());
    let mut changes: BTreeMap<Key<'_>, ActionChange> = BTreeMap::new();
    let mut levers: BTreeMap<(Uuid, &str, String, String), Lever> = BTreeMap::new();
    let mut results: BTreeMap<(Uuid, String), (ActionResult, &str)> = BTreeMap::new();
    let mut owners: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    for i in order {
        let (report, received_at) = batch[i];
        let (cycle_id, action_id) = key_of(report);
        let Some(f) = facts.get_mut(&(cycle_id, action_id.to_owned())) else {
            // Under the batch's scope a cycle of a tenant outside it is invisible: ask whose
            // it is, as the lone path does.
            let owner = match owners.get(&cycle_id) {
                Some(o) => *o,
                None => {
                    let o = cycle_tenant(tx, cycle_id).await?;
                    owners.insert(cycle_id, o);
                    o
                }
            };
            out[i] = Some(match owner {
                Some(t) if t != report.tenant_id => ReportOutcome::WrongTenant,
                _ => ReportOutcome::UnknownAction,
            });
            continue;
        };
        if f.tenant_id != report.tenant_id {
            out[i] = Some(ReportOutcome::WrongTenant);
            continue;
        }
        let j: Judgement = policy.judge(f, report, received_at);
        if !recorded.insert((&report.source, &report.id)) {
            out[i] = Some(ReportOutcome::Duplicate);
            continue;
        }
        let before = f.status;
        let change = changes.entry((cycle_id, action_id)).or_default();
        if j.status != before {
            change.moved = true;
            change.status = Some(j.status);
            f.status = j.status;
        }
        if let Some(a) = j.applied {
            change.applied = Some(a);
        }
        if let Some(l) = j.lever {
            let lever = Lever::parse(l)?;
            let key = (
                f.tenant_id,
                lever.subsystem,
                lever.entity_id.clone(),
                lever.field.clone(),
            );
            // Each upsert keeps the newer `since` (a tie goes to the later report): the
            // winner among the batch's is the one whose upsert would have stuck.
            match levers.get(&key) {
                Some(kept) if kept.since > lever.since => {}
                _ => {
                    levers.insert(key, lever);
                }
            }
        }
        if let Some(r) = &j.outcome {
            change.outcome = Some(r.outcome.as_str());
        }
        rows.push(ReportRow {
            report,
            received_at,
            before,
            after: j.status,
            result: j.result,
        });
        if let Some(r) = j.outcome {
            // The last one of an action wins, as the last upsert would.
            results.insert((f.tenant_id, r.action_id.clone()), (r, &report.source));
        }
        out[i] = Some(ReportOutcome::Recorded {
            before,
            after: j.status,
            result: j.result,
        });
    }
    write(tx, &rows, &changes, &levers, &results).await?;
    Ok(out.into_iter().flatten().collect())
}

fn key_of(r: &Report) -> Key<'_> {
    let s: &Subject = &r.subject;
    (s.cycle_id(), s.action_id())
}

/// A lever the batch sets, parsed.
struct Lever {
    subsystem: &'static str,
    entity_id: String,
    field: String,
    value: Value,
    since: DateTime<Utc>,
    cycle_id: Uuid,
    action_id: String,
}

impl Lever {
    fn parse(l: crate::contract::KnownLever) -> Result<Self, StoreError> {
        // At the database's precision, so the batch picks the winner the upserts would.
        let since = crate::contract::parse_timestamp(&l.since)
            .ok_or_else(|| StoreError::Corrupt(format!("lever time '{}'", l.since)))?
            .trunc_subsecs(6);
        let cycle_id = Uuid::parse_str(&l.cycle_id)
            .map_err(|_| StoreError::Corrupt(format!("lever cycle '{}'", l.cycle_id)))?;
        Ok(Lever {
            subsystem: l.subsystem.as_str(),
            entity_id: l.entity_id.unwrap_or_default(),
            field: l.field,
            value: l.value,
            since,
            cycle_id,
            action_id: l.action_id,
        })
    }
}

/// The batch's writes, one statement per table, sent together. Lever and result rows go in
/// key order, so two batches upserting the same rows take their locks in the same order.
async fn write(
    tx: &Transaction<'_>,
    rows: &[ReportRow<'_>],
    changes: &BTreeMap<Key<'_>, ActionChange>,
    levers: &BTreeMap<(Uuid, &str, String, String), Lever>,
    results: &BTreeMap<(Uuid, String), (ActionResult, &str)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let tenant: Vec<Uuid> = rows.iter().map(|r| r.report.tenant_id).collect();
    let cycle: Vec<Uuid> = rows.iter().map(|r| key_of(r.report).0).collect();
    let action: Vec<&str> = rows.iter().map(|r| key_of(r.report).1).collect();
    let source: Vec<&str> = rows.iter().map(|r| r.report.source.as_str()).collect();
    let event_id: Vec<&str> = rows.iter().map(|r| r.report.id.as_str()).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.report.kind().as_str()).collect();
    let on_revert: Vec<bool> = rows
        .iter()
        .map(|r| matches!(r.report.subject, Subject::Revert { .. }))
        .collect();
    let event_time: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.report.time).collect();
    let received: Vec<DateTime<Utc>> = rows.iter().map(|r| r.received_at).collect();
    let before: Vec<&str> = rows.iter().map(|r| r.before.as_str()).collect();
    let after: Vec<&str> = rows.iter().map(|r| r.after.as_str()).collect();
    let verdict: Vec<&str> = rows.iter().map(|r| r.result.as_str()).collect();
    let event: Vec<&Value> = rows.iter().map(|r| &r.report.raw).collect();
    // A function scan yields the arrays in order, so `id` (the history's order) follows the
    // batch's.
    let insert_params: [&(dyn ToSql + Sync); 13] = [
        &tenant,
        &cycle,
        &action,
        &source,
        &event_id,
        &kind,
        &on_revert,
        &event_time,
        &received,
        &before,
        &after,
        &verdict,
        &event,
    ];
    let insert = (
        "INSERT INTO action_reports (tenant_id, cycle_id, action_id, source, event_id, type,
             on_revert, event_time, received_at, status_before, status_after, result, event)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::bool[], $8::timestamptz[], $9::timestamptz[],
                              $10::text[], $11::text[], $12::text[], $13::jsonb[])
         ON CONFLICT (source, event_id) DO NOTHING",
        &insert_params,
    );

    let changed: Vec<(&Key<'_>, &ActionChange)> = changes
        .iter()
        .filter(|(_, c)| c.moved || c.applied.is_some() || c.outcome.is_some())
        .collect();
    let a_cycle: Vec<Uuid> = changed.iter().map(|(k, _)| k.0).collect();
    let a_action: Vec<&str> = changed.iter().map(|(k, _)| k.1).collect();
    let a_moved: Vec<bool> = changed.iter().map(|(_, c)| c.moved).collect();
    let a_status: Vec<Option<&str>> = changed
        .iter()
        .map(|(_, c)| c.status.map(|s| s.as_str()))
        .collect();
    let a_has_applied: Vec<bool> = changed.iter().map(|(_, c)| c.applied.is_some()).collect();
    let a_at: Vec<Option<DateTime<Utc>>> = changed
        .iter()
        .map(|(_, c)| c.applied.as_ref().map(|a| a.at))
        .collect();
    let a_before: Vec<Option<&Value>> = changed
        .iter()
        .map(|(_, c)| c.applied.as_ref().map(|a| &a.before))
        .collect();
    let a_after: Vec<Option<&Value>> = changed
        .iter()
        .map(|(_, c)| c.applied.as_ref().map(|a| &a.after))
        .collect();
    let a_inverse: Vec<Option<&Value>> = changed
        .iter()
        .map(|(_, c)| c.applied.as_ref().and_then(|a| a.inverse.as_ref()))
        .collect();
    let a_outcome: Vec<Option<&str>> = changed.iter().map(|(_, c)| c.outcome).collect();
    let update_params: [&(dyn ToSql + Sync); 10] = [
        &a_cycle,
        &a_action,
        &a_moved,
        &a_status,
        &a_has_applied,
        &a_at,
        &a_before,
        &a_after,
        &a_inverse,
        &a_outcome,
    ];
    let update = (
        "UPDATE actions a SET
            status = CASE WHEN u.moved THEN u.status ELSE a.status END,
            updated_at = CASE WHEN u.moved THEN now() ELSE a.updated_at END,
            applied_at = CASE WHEN u.has_applied THEN u.at ELSE a.applied_at END,
            applied_before = CASE WHEN u.has_applied THEN u.before ELSE a.applied_before END,
            applied_after = CASE WHEN u.has_applied THEN u.after ELSE a.applied_after END,
            applied_inverse = CASE WHEN u.has_applied THEN u.inverse ELSE a.applied_inverse END,
            outcome = coalesce(u.outcome, a.outcome)
         FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::text[], $5::bool[],
                     $6::timestamptz[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::text[])
              AS u(cycle_id, action_id, moved, status, has_applied, at, before, after,
                   inverse, outcome)
         WHERE a.cycle_id = u.cycle_id AND a.action_id = u.action_id",
        &update_params,
    );

    let l_tenant: Vec<Uuid> = levers.keys().map(|k| k.0).collect();
    let l_subsystem: Vec<&str> = levers.values().map(|l| l.subsystem).collect();
    let l_entity: Vec<&str> = levers.values().map(|l| l.entity_id.as_str()).collect();
    let l_field: Vec<&str> = levers.values().map(|l| l.field.as_str()).collect();
    let l_value: Vec<&Value> = levers.values().map(|l| &l.value).collect();
    let l_since: Vec<DateTime<Utc>> = levers.values().map(|l| l.since).collect();
    let l_cycle: Vec<Uuid> = levers.values().map(|l| l.cycle_id).collect();
    let l_action: Vec<&str> = levers.values().map(|l| l.action_id.as_str()).collect();
    let lever_params: [&(dyn ToSql + Sync); 8] = [
        &l_tenant,
        &l_subsystem,
        &l_entity,
        &l_field,
        &l_value,
        &l_since,
        &l_cycle,
        &l_action,
    ];
    let lever = (
        "INSERT INTO lever_state (tenant_id, subsystem, entity_id, field, value, since,
                                  cycle_id, action_id)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                              $6::timestamptz[], $7::uuid[], $8::text[])
         ON CONFLICT (tenant_id, subsystem, entity_id, field) DO UPDATE SET
            value = EXCLUDED.value, since = EXCLUDED.since,
            cycle_id = EXCLUDED.cycle_id, action_id = EXCLUDED.action_id
         WHERE lever_state.since <= EXCLUDED.since",
        &lever_params,
    );

    let result_rows = ResultRows::new(results.iter().map(|((t, _), (r, s))| (*t, r, *s)));
    let result_params = result_rows.params();
    let result = (ResultRows::SQL, &result_params);

    // Prepared first (a no-op once cached), then sent together and run in this order: a later
    // one fails as 25P02 when an earlier one did, so the first error is the one to report.
    let (s_insert, s_update, s_lever, s_result) = futures_util::try_join!(
        tx.prepare_cached(insert.0),
        tx.prepare_cached(update.0),
        tx.prepare_cached(lever.0),
        tx.prepare_cached(result.0),
    )?;
    let (inserted, updated, lever, result) = futures_util::join!(
        tx.execute(&s_insert, insert.1),
        tx.execute(&s_update, update.1),
        tx.execute(&s_lever, lever.1),
        tx.execute(&s_result, result.1),
    );
    let inserted = inserted?;
    updated?;
    lever?;
    result?;
    if usize::try_from(inserted).ok() != Some(rows.len()) {
        return Err(StoreError::Conflict(format!(
            "{} of {} reports were recorded before",
            rows.len() as u64 - inserted,
            rows.len()
        )));
    }
    Ok(())
}
