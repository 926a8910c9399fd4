//! Read-only views for people: the operator console and `revenue-os report`. Plain rows, every
//! query parameterised and led by the tenant (or the cycle) it is about. No rules: what a row
//! means on a page is the console's business.

use super::tenant::{cycle_tx, set_tenant, tenant_tx};
use super::{Store, StoreError};
use crate::contract::{Action, Targets};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

/// One cycle in a list: what bound, how sure, or why it did not complete.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleBrief {
    pub cycle_id: Uuid,
    pub tenant_id: Uuid,
    pub executed_at: DateTime<Utc>,
    pub status: String,
    pub binding_constraint: Option<String>,
    pub priority_metric: Option<String>,
    pub confidence: Option<f64>,
    pub diagnosis: Option<String>,
    pub error_code: Option<String>,
    /// The error's message, for a failed or skipped cycle.
    pub error_message: Option<String>,
    /// Why a decided cycle was skipped (`no_executable_action`: nothing to do).
    pub skip_reason: Option<String>,
}

/// A tenant as the overview lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSummary {
    pub tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The latest completed cycle.
    pub latest: Option<CycleBrief>,
    pub pending_approvals: i64,
    /// Actions reverting or reverted, or judged `abort` by the watchdog, in the window.
    pub reverts: i64,
    /// Cycles that failed in the window.
    pub failed_cycles: i64,
}

/// A trigger for a tenant that did not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedTrigger {
    pub message_id: String,
    pub tenant_id: Uuid,
    pub error_code: String,
    pub message: String,
    pub rejected_at: DateTime<Utc>,
}

/// One action of a cycle with its lifecycle status.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionView {
    pub cycle_id: Uuid,
    pub action_id: String,
    pub priority: i16,
    pub status: String,
    pub action: Action,
    pub updated_at: DateTime<Utc>,
    pub outcome: Option<String>,
    /// Why the approval policy held it, if it did.
    pub approval_reason: Option<String>,
}

/// A whole cycle: the record, the output or error, and the kernel's trace when stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleDetail {
    pub brief: CycleBrief,
    pub message_id: String,
    pub trigger_type: String,
    pub trigger_source: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub duration_ms: i32,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub trace: Option<String>,
}

/// An outcome row (`action_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeView {
    pub action_id: String,
    pub target_metric: String,
    pub baseline_value: f64,
    pub observed_value: f64,
    pub delta: f64,
    pub confidence: f64,
    pub outcome: String,
    pub source: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// A person's decision on a held action (`approval_decisions`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionView {
    pub action_id: String,
    pub decision: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// A campaign as the tenant page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub budget_total: f64,
    pub budget_spent: f64,
}

const CYCLE_COLUMNS: &str = "c.cycle_id, c.tenant_id, c.executed_at, c.status, \
     c.binding_constraint, c.priority_metric, c.confidence, c.diagnosis, c.error_code, \
     c.error->>'message', c.skip_reason";

fn brief(r: &Row, at: usize) -> Result<CycleBrief, StoreError> {
    Ok(CycleBrief {
        cycle_id: r.try_get(at)?,
        tenant_id: r.try_get(at + 1)?,
        executed_at: r.try_get(at + 2)?,
        status: r.try_get(at + 3)?,
        binding_constraint: r.try_get(at + 4)?,
        priority_metric: r.try_get(at + 5)?,
        confidence: r.try_get(at + 6)?,
        diagnosis: r.try_get(at + 7)?,
        error_code: r.try_get(at + 8)?,
        error_message: r.try_get(at + 9)?,
        skip_reason: r.try_get(at + 10)?,
    })
}

impl Store {
    /// Every tenant with its latest completed cycle and the counts an operator watches, over
    /// the `days` before `now`. The tenants come from `revenue_os.tenant_ids`; each summary
    /// is read under its own tenant's scope, all in one transaction.
    pub async fn tenant_summaries(
        &self,
        now: DateTime<Utc>,
        days: i32,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenants: Vec<Uuid> = tx
            .query("SELECT revenue_os.tenant_ids()", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let sql = format!(
            "SELECT n.tenant_id, n.created_at,
                (SELECT count(*) FROM actions a
                  WHERE a.tenant_id = n.tenant_id AND a.status = 'pending_approval'),
                (SELECT count(*) FROM (
                    SELECT a.cycle_id, a.action_id FROM actions a
                     WHERE a.tenant_id = n.tenant_id AND a.status IN ('reverting', 'reverted')
                       AND a.updated_at >= $1::timestamptz - make_interval(days => $2)
                    UNION
                    SELECT e.cycle_id, e.action_id FROM watchdog_evaluations e
                     WHERE e.tenant_id = n.tenant_id AND e.verdict = 'abort'
                       AND e.evaluated_at >= $1::timestamptz - make_interval(days => $2)) r),
                (SELECT count(*) FROM cycles f
                  WHERE f.tenant_id = n.tenant_id AND f.status = 'failed'
                    AND f.executed_at >= $1::timestamptz - make_interval(days => $2)),
                l.*
             FROM tenants n
             LEFT JOIN LATERAL (
                SELECT {CYCLE_COLUMNS} FROM cycles c
                 WHERE c.tenant_id = n.tenant_id AND c.status = 'completed'
                 ORDER BY c.executed_at DESC LIMIT 1) l ON true
             WHERE n.tenant_id = $3"
        );
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            set_tenant(&tx, tenant).await?;
            for r in &tx.query(&sql, &[&now, &days, &tenant]).await? {
                let latest: Option<Uuid> = r.try_get(5)?;
                out.push(TenantSummary {
                    tenant_id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    pending_approvals: r.try_get(2)?,
                    reverts: r.try_get(3)?,
                    failed_cycles: r.try_get(4)?,
                    latest: latest.map(|_| brief(r, 5)).transpose()?,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Triggers rejected for an unknown tenant, newest first: the keys from
    /// `revenue_os.rejected_triggers`, each row read under its tenant's scope.
    pub async fn rejected_triggers(&self, limit: i64) -> Result<Vec<RejectedTrigger>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys: Vec<(Uuid, String)> = tx
            .query(
                "SELECT tenant_id, message_id FROM revenue_os.rejected_triggers($1)",
                &[&limit],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for (tenant, message_id) in &keys {
            set_tenant(&tx, *tenant).await?;
            let row = tx
                .query_opt(
                    "SELECT message_id, tenant_id, error_code, coalesce(error->>'message', ''),
                            rejected_at
                     FROM rejected_triggers WHERE tenant_id = $1 AND message_id = $2",
                    &[tenant, message_id],
                )
                .await?;
            if let Some(r) = row {
                out.push(RejectedTrigger {
                    message_id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    error_code: r.try_get(2)?,
                    message: r.try_get(3)?,
                    rejected_at: r.try_get(4)?,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Whether the tenant exists.
    pub async fn tenant_exists(&self, tenant: Uuid) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let found = tx
            .query_opt("SELECT 1 FROM tenants WHERE tenant_id = $1", &[&tenant])
            .await?
            .is_some();
        tx.commit().await?;
        Ok(found)
    }

    /// A tenant's latest cycles of any status, newest first.
    pub async fn recent_cycles(
        &self,
        tenant: Uuid,
        limit: i64,
    ) -> Result<Vec<CycleBrief>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles c WHERE c.tenant_id = $1
             ORDER BY c.executed_at DESC, c.cycle_id LIMIT $2"
        );
        let rows = tx.query(&sql, &[&tenant, &limit]).await?;
        tx.commit().await?;
        rows.iter().map(|r| brief(r, 0)).collect()
    }

    /// A tenant's latest completed cycle.
    pub async fn latest_completed_cycle(
        &self,
        tenant: Uuid,
    ) -> Result<Option<CycleBrief>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let sql = format!(
            "SELECT {CYCLE_COLUMNS} FROM cycles c
             WHERE c.tenant_id = $1 AND c.status = 'completed'
             ORDER BY c.executed_at DESC LIMIT 1"
        );
        let row = tx.query_opt(&sql, &[&tenant]).await?;
        tx.commit().await?;
        row.map(|r| brief(&r, 0)).transpose()
    }

    /// One cycle in full.
    pub async fn cycle_detail(&self, cycle: Uuid) -> Result<Option<CycleDetail>, StoreError> {
        let mut client = self.pool.get().await?;
        let Some((tx, _)) = cycle_tx(&mut client, cycle).await? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {CYCLE_COLUMNS}, c.message_id, c.trigger_type, c.trigger_source,
                    c.window_start, c.window_end, c.duration_ms, c.output, c.error, c.trace
             FROM cycles c WHERE c.cycle_id = $1"
        );
        let found = tx.query_opt(&sql, &[&cycle]).await?;
        tx.commit().await?;
        let Some(r) = found else {
            return Ok(None);
        };
        Ok(Some(CycleDetail {
            brief: brief(&r, 0)?,
            message_id: r.try_get(11)?,
            trigger_type: r.try_get(12)?,
            trigger_source: r.try_get(13)?,
            window_start: r.try_get(14)?,
            window_end: r.try_get(15)?,
            duration_ms: r.try_get(16)?,
            output: r.try_get(17)?,
            error: r.try_get(18)?,
            trace: r.try_get(19)?,
        }))
    }

    /// The actions of a cycle in priority order, with their status.
    pub async fn cycle_actions(&self, cycle: Uuid) -> Result<Vec<ActionView>, StoreError> {
        let mut client = self.pool.get().await?;
        let Some((tx, _)) = cycle_tx(&mut client, cycle).await? else {
            return Ok(vec![]);
        };
        let rows = tx
            .query(
                "SELECT cycle_id, action_id, priority, status, action, updated_at, outcome,
                        approval_reason
                 FROM actions WHERE cycle_id = $1 ORDER BY priority, action_id",
                &[&cycle],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let action_id: String = r.try_get(1)?;
                let action: Action = serde_json::from_value(r.try_get(4)?)
                    .map_err(|e| StoreError::Corrupt(format!("stored action {action_id}: {e}")))?;
                Ok(ActionView {
                    cycle_id: r.try_get(0)?,
                    action_id,
                    priority: r.try_get(2)?,
                    status: r.try_get(3)?,
                    action,
                    updated_at: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    approval_reason: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Every approval decision on a cycle's actions, oldest first.
    pub async fn approval_decisions(&self, cycle: Uuid) -> Result<Vec<DecisionView>, StoreError> {
        let mut client = self.pool.get().await?;
        let Some((tx, _)) = cycle_tx(&mut client, cycle).await? else {
            return Ok(vec![]);
        };
        let rows = tx
            .query(
                "SELECT action_id, decision, decided_by, decided_at, reason
                 FROM approval_decisions WHERE cycle_id = $1 ORDER BY id",
                &[&cycle],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(DecisionView {
                    action_id: r.try_get(0)?,
                    decision: r.try_get(1)?,
                    decided_by: r.try_get(2)?,
                    decided_at: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// A tenant-level metric's daily values (no dimension), oldest first.
    pub async fn metric_series(
        &self,
        tenant: Uuid,
        metric: &str,
    ) -> Result<Vec<(NaiveDate, f64)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT date, value FROM metric_snapshots
                 WHERE tenant_id = $1 AND metric_id = $2 AND dimension = '{}'::jsonb
                 ORDER BY date",
                &[&tenant, &metric],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The tenant's targets (all `None` without a row).
    pub async fn targets(&self, tenant: Uuid) -> Result<Targets, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let row = tx
            .query_opt(
                "SELECT pipeline_total, bookings_new, arr_target, cac_max, payback_max_months,
                        gross_margin_min
                 FROM targets WHERE tenant_id = $1",
                &[&tenant],
            )
            .await?;
        tx.commit().await?;
        let Some(t) = row else {
            return Ok(Targets::default());
        };
        Ok(Targets {
            pipeline_total: t.try_get(0)?,
            bookings_new: t.try_get(1)?,
            arr_target: t.try_get(2)?,
            cac_max: t.try_get(3)?,
            payback_max_months: t.try_get(4)?,
            gross_margin_min: t.try_get(5)?,
        })
    }

    /// A tenant's recorded outcomes, newest first.
    pub async fn outcomes(&self, tenant: Uuid, limit: i64) -> Result<Vec<OutcomeView>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT action_id, target_metric, baseline_value, observed_value, delta,
                        confidence, outcome, source, recorded_at
                 FROM action_results WHERE tenant_id = $1
                 ORDER BY recorded_at DESC, action_id LIMIT $2",
                &[&tenant, &limit],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeView {
                    action_id: r.try_get(0)?,
                    target_metric: r.try_get(1)?,
                    baseline_value: r.try_get(2)?,
                    observed_value: r.try_get(3)?,
                    delta: r.try_get(4)?,
                    confidence: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    source: r.try_get(7)?,
                    recorded_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// A tenant's campaigns, running first.
    pub async fn campaigns(&self, tenant: Uuid) -> Result<Vec<CampaignView>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT id, name, status, budget_total, budget_spent FROM campaigns
                 WHERE tenant_id = $1 ORDER BY status <> 'running', id",
                &[&tenant],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(CampaignView {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    status: r.try_get(2)?,
                    budget_total: r.try_get(3)?,
                    budget_spent: r.try_get(4)?,
                })
            })
            .collect()
    }
}
