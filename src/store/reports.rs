//! Executors' reports: what a report is judged on (`ActionFacts`), the caller's
//! `ReportPolicy` and its `Judgement`, what recording one did, and the reads of reports and
//! levers. Recording (status, applied values, lever state, outcome row, in one transaction)
//! is `report_batch`'s. The lifecycle rules are the policy's; the store only keeps the facts.

use super::cached::Cached;
use super::tenant::{cycle_tx, tenant_tx};
use super::{Store, StoreError};
use crate::contract::{Action, ActionResult, ActionStatus, KnownLever, Levers, Report, Subsystem};
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// What the store knows of an action when a report about it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFacts {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub status: ActionStatus,
    pub action: Action,
}

/// How a report was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportResult {
    /// It moved the action (or was recorded as part of its history).
    Applied,
    /// Consistent but behind: the action is already past it (an `acknowledged` after
    /// `applied`). Recorded; nothing changes.
    Late,
    /// The lifecycle does not allow it from the current status. Recorded; nothing changes.
    InvalidTransition,
}

impl ReportResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportResult::Applied => "applied",
            ReportResult::Late => "late",
            ReportResult::InvalidTransition => "invalid_transition",
        }
    }
}

/// The values an executor reported applying.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedChange {
    pub before: Value,
    pub after: Value,
    pub inverse: Option<Value>,
    pub at: DateTime<Utc>,
}

/// The policy's verdict on one report; the store applies it as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub result: ReportResult,
    /// The action's status afterwards (the same as before when nothing moves).
    pub status: ActionStatus,
    pub applied: Option<AppliedChange>,
    pub lever: Option<KnownLever>,
    /// An `action_results` row to upsert (what the next cycle learns from).
    pub outcome: Option<ActionResult>,
}

/// The rules for reports, supplied by the caller (`results`).
pub trait ReportPolicy: Sync {
    fn judge(&self, facts: &ActionFacts, report: &Report, received_at: DateTime<Utc>) -> Judgement;
}

/// What `record_report` did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome {
    /// The subject names no action.
    UnknownAction,
    /// The action belongs to another tenant than the report says; nothing is written.
    WrongTenant,
    /// The same `source` + `id` was recorded before; nothing changes.
    Duplicate,
    Recorded {
        before: ActionStatus,
        after: ActionStatus,
        result: ReportResult,
    },
}

impl Store {
    /// The known state of a tenant's levers.
    pub async fn levers(&self, tenant_id: Uuid) -> Result<Levers, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant_id).await?;
        let levers = levers_in(&tx, tenant_id).await?;
        tx.commit().await?;
        Ok(levers)
    }

    /// Every report on one action, oldest first: its history.
    pub async fn action_reports(
        &self,
        cycle_id: Uuid,
        action_id: &str,
    ) -> Result<Vec<StoredReport>, StoreError> {
        let mut client = self.pool.get().await?;
        let Some((tx, _)) = cycle_tx(&mut client, cycle_id).await? else {
            return Ok(vec![]);
        };
        let rows = tx
            .query_cached(
                "SELECT source, event_id, type, on_revert, received_at, status_before,
                        status_after, result, event
                 FROM action_reports WHERE cycle_id = $1 AND action_id = $2 ORDER BY id",
                &[&cycle_id, &action_id],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(StoredReport {
                    source: r.try_get(0)?,
                    event_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    on_revert: r.try_get(3)?,
                    received_at: r.try_get(4)?,
                    status_before: r.try_get(5)?,
                    status_after: r.try_get(6)?,
                    result: r.try_get(7)?,
                    event: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// A tenant's outbox rows not yet published plus actions sent but not yet reported on:
    /// zero once executors have caught up.
    pub async fn in_flight(&self, tenant: Uuid) -> Result<i64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let row = tx
            .query_one_cached(
                "SELECT (SELECT count(*) FROM outbox WHERE tenant_id = $1 AND published_at IS NULL)
                      + (SELECT count(*) FROM actions WHERE tenant_id = $1
                         AND status IN ('pending', 'published', 'acknowledged', 'reverting'))",
                &[&tenant],
            )
            .await?;
        tx.commit().await?;
        Ok(row.try_get(0)?)
    }

    /// Actions per status, for the gauge (every tenant's: `revenue_os.action_status_counts`;
    /// past 1,000,000 actions, the statuses nobody acts on are a sample's estimate).
    pub async fn action_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT status, n FROM revenue_os.action_status_counts()",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// One stored report, as an action's history shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub source: String,
    pub event_id: String,
    pub kind: String,
    pub on_revert: bool,
    pub received_at: DateTime<Utc>,
    pub status_before: String,
    pub status_after: String,
    pub result: String,
    pub event: Value,
}

/// One `action_results` row, stamped now: the next cycle's `recent_action_results`.
pub(super) async fn upsert_result(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    r: &ActionResult,
    source: &str,
) -> Result<(), StoreError> {
    let rows = ResultRows::new(std::iter::once((tenant_id, r, source)));
    tx.execute_cached(ResultRows::SQL, &rows.params()).await?;
    Ok(())
}

/// `action_results` rows as the columns of one upsert (`SQL`), for one report or a batch.
/// One row per (tenant, action) in a call: an upsert cannot touch a row twice.
pub(super) struct ResultRows<'a> {
    tenant: Vec<Uuid>,
    action: Vec<&'a str>,
    metric: Vec<&'a str>,
    baseline: Vec<f64>,
    observed: Vec<f64>,
    delta: Vec<f64>,
    confidence: Vec<f64>,
    outcome: Vec<&'static str>,
    source: Vec<&'a str>,
}

impl<'a> ResultRows<'a> {
    pub(super) const SQL: &'static str = "INSERT INTO action_results (tenant_id, action_id,
            target_metric, baseline_value, observed_value, delta, confidence, outcome, source,
            recorded_at)
         SELECT *, now() FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[],
                                     $5::float8[], $6::float8[], $7::float8[], $8::text[],
                                     $9::text[])
         ON CONFLICT (tenant_id, action_id) DO UPDATE SET
            target_metric = EXCLUDED.target_metric, baseline_value = EXCLUDED.baseline_value,
            observed_value = EXCLUDED.observed_value, delta = EXCLUDED.delta,
            confidence = EXCLUDED.confidence, outcome = EXCLUDED.outcome,
            source = EXCLUDED.source, recorded_at = now()";

    pub(super) fn new(rows: impl Iterator<Item = (Uuid, &'a ActionResult, &'a str)>) -> Self {
        let mut out = ResultRows {
            tenant: vec![],
            action: vec![],
            metric: vec![],
            baseline: vec![],
            observed: vec![],
            delta: vec![],
            confidence: vec![],
            outcome: vec![],
            source: vec![],
        };
        for (tenant, r, source) in rows {
            out.tenant.push(tenant);
            out.action.push(&r.action_id);
            out.metric.push(&r.target_metric);
            out.baseline.push(r.baseline_value);
            out.observed.push(r.observed_value);
            out.delta.push(r.delta);
            out.confidence.push(r.confidence);
            out.outcome.push(r.outcome.as_str());
            out.source.push(source);
        }
        out
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.tenant,
            &self.action,
            &self.metric,
            &self.baseline,
            &self.observed,
            &self.delta,
            &self.confidence,
            &self.outcome,
            &self.source,
        ]
    }
}

/// What a revert of the lever's last action restores: the reported `before`, or an inverse on
/// the same field (as `results::lifecycle` records it). Unknown for a lever a revert set (its
/// value is then not the action's `applied_after`, so the join finds nothing).
fn lever_before(
    field: String,
    before: Option<serde_json::Value>,
    inverse: Option<serde_json::Value>,
) -> Option<serde_json::Value> {
    match inverse {
        None => before,
        Some(i) => (i.get("field").and_then(|f| f.as_str()) == Some(field.as_str()))
            .then(|| i.get("value").cloned())
            .flatten(),
    }
}

pub(super) async fn levers_in(
    client: &Transaction<'_>,
    tenant_id: Uuid,
) -> Result<Levers, StoreError> {
    let rows = client
        .query_cached(
            "SELECT l.subsystem, l.entity_id, l.field, l.value, l.since, l.cycle_id,
                    l.action_id, a.applied_before, a.applied_inverse
             FROM lever_state l
             LEFT JOIN actions a ON a.cycle_id = l.cycle_id AND a.action_id = l.action_id
                                AND a.applied_after = l.value
             WHERE l.tenant_id = $1 ORDER BY l.subsystem, l.entity_id, l.field",
            &[&tenant_id],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let subsystem: String = r.try_get(0)?;
        let entity: String = r.try_get(1)?;
        let since: DateTime<Utc> = r.try_get(4)?;
        let cycle: Uuid = r.try_get(5)?;
        out.push(KnownLever {
            subsystem: Subsystem::parse(&subsystem)
                .ok_or_else(|| StoreError::Corrupt(format!("lever subsystem '{subsystem}'")))?,
            entity_id: (!entity.is_empty()).then_some(entity),
            field: r.try_get(2)?,
            value: r.try_get(3)?,
            since: since.to_rfc3339_opts(SecondsFormat::Secs, true),
            cycle_id: cycle.to_string(),
            action_id: r.try_get(6)?,
            before: lever_before(r.try_get(2)?, r.try_get(7)?, r.try_get(8)?),
        });
    }
    Ok(Levers::new(out))
}
