//! The watchdog's storage: claim one action due for evaluation (`FOR UPDATE SKIP LOCKED`, so
//! several workers share a sweep without doubling work), hand its facts to the caller's
//! `WatchPolicy`, and apply the decision in the same transaction: the evaluation, the status,
//! the revert or escalation in the outbox, the outcome row.

use super::reports::upsert_result;
use super::tenant::{set_tenant, set_tenants, tenant_tx};
use super::webhooks;
use super::{OutboxMessage, OutboxRow, Store, StoreError, outbox};
use crate::contract::{Action, ActionResult, ActionStatus, Notification, NotifyEvent, Outcome};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// What the store knows of an action under watch.
#[derive(Debug, Clone)]
pub struct WatchFacts {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub status: ActionStatus,
    pub action: Action,
    /// When the executor reported it applied, or (watching from `published`) when the
    /// broker confirmed it.
    pub since: DateTime<Utc>,
    pub applied_before: Option<Value>,
    pub applied_after: Option<Value>,
    pub applied_inverse: Option<Value>,
    pub escalated: bool,
    /// `enforce` or `shadow`.
    pub shadow: bool,
    /// The tenant's newest metric day.
    pub as_of: NaiveDate,
    /// Daily tenant-level values of the metrics the policy asked for, over its horizon.
    pub metrics: BTreeMap<String, BTreeMap<NaiveDate, f64>>,
    /// The sweep's clock reading.
    pub now: DateTime<Utc>,
}

/// What an evaluation concluded, as stored in `watchdog_evaluations.verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchVerdict {
    Watching,
    Abort,
    /// An abort that shadow mode recorded instead of publishing.
    WouldRevert,
    Escalate,
    Measured,
    Unmeasurable,
}

impl WatchVerdict {
    pub const ALL: [WatchVerdict; 6] = [
        WatchVerdict::Watching,
        WatchVerdict::Abort,
        WatchVerdict::WouldRevert,
        WatchVerdict::Escalate,
        WatchVerdict::Measured,
        WatchVerdict::Unmeasurable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WatchVerdict::Watching => "watching",
            WatchVerdict::Abort => "abort",
            WatchVerdict::WouldRevert => "would_revert",
            WatchVerdict::Escalate => "escalate",
            WatchVerdict::Measured => "measured",
            WatchVerdict::Unmeasurable => "unmeasurable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }
}

/// One evaluation as stored and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub verdict: WatchVerdict,
    pub outcome: Option<Outcome>,
    pub sentence: String,
    pub numbers: Value,
}

/// The policy's decision; the store applies it as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchDecision {
    pub evaluation: Evaluation,
    pub status: Option<ActionStatus>,
    pub escalate: bool,
    pub outbox: Vec<OutboxMessage>,
    pub result: Option<ActionResult>,
}

/// What the watchdog needs to read for one action: these metrics, from this day on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchNeeds {
    pub metrics: Vec<String>,
    pub from: NaiveDate,
}

/// The watchdog's rules, as the store asks for them.
pub trait WatchPolicy: Sync {
    /// Action types that are never watched: the claim passes over them.
    fn unwatched_types(&self) -> Vec<&'static str>;
    /// The metrics and the history an evaluation of `action`, in effect since `since`, reads.
    fn needs(&self, action: &Action, since: DateTime<Utc>) -> WatchNeeds;
    fn decide(&self, facts: &WatchFacts) -> WatchDecision;
}

/// What one `watch_next` did.
#[derive(Debug, Clone)]
pub struct Watched {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub as_of: NaiveDate,
    pub decision: WatchDecision,
    /// Outbox rows written (a revert, an escalation), to relay now.
    pub outbox: Vec<OutboxRow>,
}

/// A stored evaluation, as the CLI and the console show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredEvaluation {
    pub cycle_id: Uuid,
    pub action_id: String,
    pub as_of: NaiveDate,
    pub evaluated_at: DateTime<Utc>,
    pub mode: String,
    pub verdict: String,
    pub outcome: Option<String>,
    pub sentence: String,
    pub numbers: Value,
}

impl Store {
    /// Claims the next action of `tenant` (or of any tenant) that is due, evaluates it with
    /// `policy` and applies the decision; `None` when nothing is due. Across tenants, the
    /// tenants with due actions come from `revenue_os.watch_due_tenants`; the claim itself
    /// (`FOR UPDATE SKIP LOCKED`) runs under each one's scope in turn, in one transaction,
    /// until one yields an action.
    pub async fn watch_next(
        &self,
        tenant: Option<Uuid>,
        policy: &dyn WatchPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Watched>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let candidates: Vec<Uuid> = match tenant {
            Some(t) => vec![t],
            None => tx
                .query("SELECT revenue_os.watch_due_tenants()", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?,
        };
        let mut claimed = None;
        for t in candidates {
            set_tenant(&tx, t).await?;
            if let Some(f) = claim(&tx, t, policy, now).await? {
                claimed = Some(f);
                break;
            }
        }
        let Some(facts) = claimed else {
            tx.commit().await?;
            return Ok(None);
        };
        let decision = policy.decide(&facts);
        let outbox = apply(&tx, &facts, &decision, now).await?;
        tx.commit().await?;
        Ok(Some(Watched {
            tenant_id: facts.tenant_id,
            cycle_id: facts.cycle_id,
            action_id: facts.action_id,
            as_of: facts.as_of,
            decision,
            outbox,
        }))
    }

    /// Every due action of `tenants` in one transaction: one claim (`FOR UPDATE SKIP
    /// LOCKED`: actions another worker holds are left to it), one read of the metrics they
    /// need, the policy's decisions, then one write of the evaluations and one of the
    /// actions' new state, plus whatever reverts, escalations and outcomes were decided.
    /// The same decisions as `watch_next` one action at a time, at a few round trips per
    /// batch instead of per action.
    pub async fn watch_batch(
        &self,
        tenants: &[Uuid],
        policy: &dyn WatchPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Watched>, StoreError> {
        if tenants.is_empty() {
            return Ok(vec![]);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        set_tenants(&tx, tenants).await?;
        let claimed = claim_batch(&tx, tenants, policy, now).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let decided: Vec<(WatchFacts, WatchDecision)> = claimed
            .into_iter()
            .map(|f| {
                let d = policy.decide(&f);
                (f, d)
            })
            .collect();
        let pairs: Vec<(&WatchFacts, &WatchDecision)> =
            decided.iter().map(|(f, d)| (f, d)).collect();
        record_batch(&tx, &pairs, now).await?;
        let mut out = Vec::with_capacity(decided.len());
        for (f, d) in decided {
            // Rare (a revert, an escalation, an outcome): one at a time, as `apply` does.
            let outbox = side_effects(&tx, &f, &d, now).await?;
            out.push(Watched {
                tenant_id: f.tenant_id,
                cycle_id: f.cycle_id,
                action_id: f.action_id,
                as_of: f.as_of,
                decision: d,
                outbox,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A tenant's evaluations, newest first.
    pub async fn evaluations(
        &self,
        tenant: Uuid,
        limit: i64,
    ) -> Result<Vec<StoredEvaluation>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT cycle_id, action_id, as_of, evaluated_at, mode, verdict, outcome,
                        sentence, numbers
                 FROM watchdog_evaluations WHERE tenant_id = $1
                 ORDER BY as_of DESC, id DESC LIMIT $2",
                &[&tenant, &limit],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvaluation {
                    cycle_id: r.try_get(0)?,
                    action_id: r.try_get(1)?,
                    as_of: r.try_get(2)?,
                    evaluated_at: r.try_get(3)?,
                    mode: r.try_get(4)?,
                    verdict: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    sentence: r.try_get(7)?,
                    numbers: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Sets a tenant's watchdog settings (`None` keeps the current value) and returns them.
    pub async fn set_watchdog_settings(
        &self,
        tenant: Uuid,
        shadow: Option<bool>,
        watch_published: Option<bool>,
    ) -> Result<Option<(bool, bool)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        if tx
            .query_opt("SELECT 1 FROM tenants WHERE tenant_id = $1", &[&tenant])
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let mode = shadow.map(|s| if s { "shadow" } else { "enforce" });
        let row = tx
            .query_one(
                "INSERT INTO tenant_settings (tenant_id, watchdog_mode, watch_published)
                 VALUES ($1, COALESCE($2, 'enforce'), COALESCE($3, false))
                 ON CONFLICT (tenant_id) DO UPDATE SET
                    watchdog_mode = COALESCE($2, tenant_settings.watchdog_mode),
                    watch_published = COALESCE($3, tenant_settings.watch_published),
                    updated_at = now()
                 RETURNING watchdog_mode = 'shadow', watch_published",
                &[&tenant, &mode, &watch_published],
            )
            .await?;
        tx.commit().await?;
        Ok(Some((row.try_get(0)?, row.try_get(1)?)))
    }

    /// Seconds since the oldest action under watch became due (newer metric data than its
    /// last evaluation), 0 when none is.
    pub async fn oldest_overdue_evaluation_secs(&self) -> Result<f64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT revenue_os.oldest_overdue_evaluation_secs()", &[])
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// When the change of `actions a` began: its `applied` report, else, for an action watched
/// from its confirm, `revenue_os.published_since` (V25). The claim reads it and `DUE` judges
/// by it.
macro_rules! since {
    () => {
        "COALESCE(a.applied_at, revenue_os.published_since(a.cycle_id, a.action_id))"
    };
}

/// An action under watch as the claim reads it: `CLAIM_COLUMNS` of `actions a`.
const CLAIM_COLUMNS: &str = concat!(
    "a.tenant_id, a.cycle_id, a.action_id, a.status, a.action, ",
    since!(),
    ", a.applied_before, a.applied_after, a.applied_inverse,
        a.escalated_at IS NOT NULL,
        COALESCE((SELECT ts.watchdog_mode = 'shadow' FROM tenant_settings ts
                  WHERE ts.tenant_id = a.tenant_id), false),
        (SELECT max(date) FROM metric_snapshots s WHERE s.tenant_id = a.tenant_id)"
);

/// Which actions are due: watched types, applied (or published, for tenants that watch from
/// there), behind their tenant's newest metric day, and changed before that day: the first
/// full day of a change is the one after it was applied (or first confirmed:
/// `revenue_os.published_since`, V25), and until the data reaches it an evaluation has no day
/// to check. The rule is `revenue_os.watch_is_due` (V24), which the due list and the overdue
/// gauge use too.
const DUE: &str = concat!(
    "a.type <> ALL($2)
       AND (a.status = 'applied'
            OR (a.status IN ('published', 'acknowledged')
                AND EXISTS (SELECT 1 FROM tenant_settings ts
                            WHERE ts.tenant_id = a.tenant_id AND ts.watch_published)))
       AND revenue_os.watch_is_due(
               (SELECT max(date) FROM metric_snapshots s WHERE s.tenant_id = a.tenant_id),
               a.watched_as_of, ",
    since!(),
    ")"
);

/// A claimed row's facts, before its metrics are read.
fn claimed(r: &tokio_postgres::Row, now: DateTime<Utc>) -> Result<WatchFacts, StoreError> {
    let action_id: String = r.try_get(2)?;
    let status: String = r.try_get(3)?;
    let action: Action = serde_json::from_value(r.try_get(4)?)
        .map_err(|e| StoreError::Corrupt(format!("stored action {action_id}: {e}")))?;
    let since: Option<DateTime<Utc>> = r.try_get(5)?;
    // An action's cycle row outlives its outbox rows (V25), so only a hand edit leaves none.
    let since = since
        .ok_or_else(|| StoreError::Corrupt(format!("{action_id}: no applied or published time")))?;
    Ok(WatchFacts {
        tenant_id: r.try_get(0)?,
        cycle_id: r.try_get(1)?,
        status: ActionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("action status '{status}'")))?,
        action,
        since,
        action_id,
        applied_before: r.try_get(6)?,
        applied_after: r.try_get(7)?,
        applied_inverse: r.try_get(8)?,
        escalated: r.try_get(9)?,
        shadow: r.try_get(10)?,
        as_of: r.try_get(11)?,
        metrics: BTreeMap::new(),
        now,
    })
}

/// The tenant's next due action, its row locked (`FOR UPDATE SKIP LOCKED`: an action another
/// worker holds is left to it).
async fn claim(
    tx: &Transaction<'_>,
    tenant: Uuid,
    policy: &dyn WatchPolicy,
    now: DateTime<Utc>,
) -> Result<Option<WatchFacts>, StoreError> {
    let unwatched = policy.unwatched_types();
    let Some(r) = tx
        .query_opt(
            &format!(
                "SELECT {CLAIM_COLUMNS} FROM actions a
                 WHERE a.tenant_id = $1 AND {DUE}
                 ORDER BY a.cycle_id, a.action_id
                 LIMIT 1
                 FOR UPDATE OF a SKIP LOCKED"
            ),
            &[&tenant, &unwatched],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut f = claimed(&r, now)?;
    let needs = policy.needs(&f.action, f.since);
    let rows = tx
        .query(
            "SELECT metric_id, date, value FROM metric_snapshots
             WHERE tenant_id = $1 AND metric_id = ANY($2) AND dimension = '{}'::jsonb
               AND date >= $3 AND date <= $4",
            &[&f.tenant_id, &needs.metrics, &needs.from, &f.as_of],
        )
        .await?;
    for m in &rows {
        f.metrics
            .entry(m.try_get(0)?)
            .or_default()
            .insert(m.try_get(1)?, m.try_get(2)?);
    }
    Ok(Some(f))
}

/// Every due action of `tenants`, locked (`SKIP LOCKED`), with the metrics each needs: one
/// claim and one read of the union of what they need, then each action given its own part.
async fn claim_batch(
    tx: &Transaction<'_>,
    tenants: &[Uuid],
    policy: &dyn WatchPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<WatchFacts>, StoreError> {
    let unwatched = policy.unwatched_types();
    let rows = tx
        .query(
            &format!(
                "SELECT {CLAIM_COLUMNS} FROM actions a
                 WHERE a.tenant_id = ANY($1) AND {DUE}
                 ORDER BY a.tenant_id, a.cycle_id, a.action_id
                 FOR UPDATE OF a SKIP LOCKED"
            ),
            &[&tenants, &unwatched],
        )
        .await?;
    let mut facts = Vec::with_capacity(rows.len());
    let mut needs = Vec::with_capacity(rows.len());
    for r in &rows {
        let f = claimed(r, now)?;
        needs.push(policy.needs(&f.action, f.since));
        facts.push(f);
    }
    let (Some(from), Some(to)) = (
        needs.iter().map(|n| n.from).min(),
        facts.iter().map(|f| f.as_of).max(),
    ) else {
        return Ok(facts);
    };
    let mut with: Vec<Uuid> = facts.iter().map(|f| f.tenant_id).collect();
    with.dedup();
    let mut metrics: Vec<&str> = needs
        .iter()
        .flat_map(|n| n.metrics.iter().map(String::as_str))
        .collect();
    metrics.sort_unstable();
    metrics.dedup();
    let rows = tx
        .query(
            "SELECT tenant_id, metric_id, date, value FROM metric_snapshots
             WHERE tenant_id = ANY($1) AND metric_id = ANY($2) AND dimension = '{}'::jsonb
               AND date >= $3 AND date <= $4",
            &[&with, &metrics, &from, &to],
        )
        .await?;
    // tenant -> metric -> day -> value, then each action takes what it asked for.
    let mut all: BTreeMap<(Uuid, String), BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    for m in &rows {
        all.entry((m.try_get(0)?, m.try_get(1)?))
            .or_default()
            .insert(m.try_get(2)?, m.try_get(3)?);
    }
    for (f, n) in facts.iter_mut().zip(&needs) {
        for metric in &n.metrics {
            let Some(days) = all.get(&(f.tenant_id, metric.clone())) else {
                continue;
            };
            let part: BTreeMap<NaiveDate, f64> = days
                .range(n.from..=f.as_of)
                .map(|(d, v)| (*d, *v))
                .collect();
            if !part.is_empty() {
                f.metrics.insert(metric.clone(), part);
            }
        }
    }
    Ok(facts)
}

async fn apply(
    tx: &Transaction<'_>,
    f: &WatchFacts,
    d: &WatchDecision,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    record_batch(tx, &[(f, d)], now).await?;
    side_effects(tx, f, d, now).await
}

/// The evaluations and the actions' new state (`watched_as_of`, status, outcome, escalation)
/// of a batch, in two statements sent together.
async fn record_batch(
    tx: &Transaction<'_>,
    decided: &[(&WatchFacts, &WatchDecision)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let n = decided.len();
    let (mut tenant, mut cycle, mut action, mut as_of) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut mode, mut verdict, mut outcome, mut sentence, mut numbers) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut status, mut escalate) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (f, d) in decided {
        let e = &d.evaluation;
        tenant.push(f.tenant_id);
        cycle.push(f.cycle_id);
        action.push(f.action_id.as_str());
        as_of.push(f.as_of);
        mode.push(if f.shadow { "shadow" } else { "enforce" });
        verdict.push(e.verdict.as_str());
        outcome.push(e.outcome.map(Outcome::as_str));
        sentence.push(e.sentence.as_str());
        numbers.push(&e.numbers);
        status.push(d.status.map(ActionStatus::as_str));
        escalate.push(d.escalate);
    }
    let ev: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        &now, &tenant, &cycle, &action, &as_of, &mode, &verdict, &outcome, &sentence, &numbers,
    ];
    let up: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&now, &cycle, &action, &as_of, &status, &outcome, &escalate];
    let evaluations = tx.execute(
        "INSERT INTO watchdog_evaluations (tenant_id, cycle_id, action_id, as_of, evaluated_at,
                                           mode, verdict, outcome, sentence, numbers)
         SELECT t, c, a, d, $1, m, v, o, s, n
           FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::date[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::jsonb[]) AS u(t, c, a, d, m, v, o, s, n)
         ON CONFLICT (cycle_id, action_id, as_of) DO NOTHING",
        &ev,
    );
    let actions = tx.execute(
        "UPDATE actions x SET watched_as_of = u.d, status = COALESCE(u.st, x.status),
                              outcome = COALESCE(u.o, x.outcome),
                              escalated_at = CASE WHEN u.e THEN COALESCE(x.escalated_at, $1)
                                                  ELSE x.escalated_at END,
                              updated_at = now()
           FROM UNNEST($2::uuid[], $3::text[], $4::date[], $5::text[], $6::text[], $7::bool[])
                AS u(c, a, d, st, o, e)
          WHERE x.cycle_id = u.c AND x.action_id = u.a",
        &up,
    );
    // In statement order: the second fails as 25P02 when the first did.
    let (evaluations, actions) = futures_util::join!(evaluations, actions);
    evaluations?;
    actions?;
    Ok(())
}

/// What an evaluation may add beyond its record: the revert or escalation message, the
/// outcome row, the notification. Nothing (and no round trip) for a plain `watching`.
async fn side_effects(
    tx: &Transaction<'_>,
    f: &WatchFacts,
    d: &WatchDecision,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let e = &d.evaluation;
    let mut rows = Vec::new();
    for m in &d.outbox {
        // One revert and one escalation per action, however many sweeps decide it.
        if let Some(row) = outbox::insert_once(tx, f.tenant_id, f.cycle_id, m).await? {
            rows.push(row);
        }
    }
    if let Some(r) = &d.result {
        upsert_result(tx, f.tenant_id, r, "watchdog").await?;
    }
    // One message per revert or escalation, however many sweeps decide it (the subject is
    // the action: a second record is no new notification).
    let event = match e.verdict {
        WatchVerdict::Abort if !d.outbox.is_empty() => Some(NotifyEvent::RevertPublished),
        WatchVerdict::Escalate => Some(NotifyEvent::WatchdogEscalation),
        _ => None,
    };
    if let Some(event) = event {
        let change = &f.action.proposed_change;
        let n = Notification::new(
            event,
            format!("{}:{}", f.cycle_id, f.action_id),
            Some(f.tenant_id),
            now,
        )
        .on_action(f.cycle_id, &f.action_id)
        .with_details(webhooks::action_details(
            &f.action,
            serde_json::json!({
                "sentence": e.sentence,
                "as_of": f.as_of,
                "mode": if f.shadow { "shadow" } else { "enforce" },
                "numbers": e.numbers,
                // A revert puts back what the action changed.
                "current_value": f.applied_after.clone().unwrap_or_else(|| change.new_value.clone()),
                "new_value": if event == NotifyEvent::RevertPublished {
                    f.applied_before.clone().unwrap_or_else(|| change.current_value.clone())
                } else {
                    change.new_value.clone()
                },
            }),
        ));
        webhooks::record(tx, &n).await?;
    }
    Ok(rows)
}
