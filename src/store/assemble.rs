//! Assembly: the KernelInput the kernel sees for one tenant, trigger and window.
//!
//! Rules (docs/store.md): metrics dated within the window; revenue events with effective_date
//! within the window; campaigns running or overlapping the window; open opportunities (stage
//! not closed_won / closed_lost); campaigns and opportunities a snapshot load marked removed
//! never (`removed_by_load`); action results recorded in the 90 days before the trigger.
//! Every list is ordered deterministically (date, then id).

use super::cached::Cached;
use super::{Store, StoreError};
use crate::contract::*;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use std::collections::BTreeMap;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

/// The two documents a decision is made from: together they reproduce a cycle offline.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub input: KernelInput,
    pub levers: Levers,
}

/// How far back action results feed a cycle.
pub const ACTION_RESULTS_LOOKBACK_DAYS: i32 = 90;

impl Store {
    /// What a cycle would hand the kernel (the KernelInput and the levers' known state), read
    /// from one consistent snapshot; `None` when the tenant does not exist.
    pub async fn assemble(
        &self,
        tenant_id: Uuid,
        trigger: &Trigger,
        triggered_at: DateTime<Utc>,
        window: DateRange,
    ) -> Result<Option<Assembled>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        super::tenant::set_tenant(&tx, tenant_id).await?;
        let Some(input) = assemble_in(&tx, tenant_id, trigger, triggered_at, window).await? else {
            return Ok(None);
        };
        let levers = super::reports::levers_in(&tx, tenant_id).await?;
        tx.commit().await?;
        Ok(Some(Assembled { input, levers }))
    }
}

/// Assembly inside the caller's transaction; `None` when the tenant does not exist.
pub(super) async fn assemble_in(
    tx: &Transaction<'_>,
    tenant: Uuid,
    trigger: &Trigger,
    triggered_at: DateTime<Utc>,
    window: DateRange,
) -> Result<Option<KernelInput>, StoreError> {
    let (start, end) = (window.start(), window.end());
    let lookback = ACTION_RESULTS_LOOKBACK_DAYS;

    let by_tenant: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant];
    let by_window: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&tenant, &start, &end];
    let by_recency: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&tenant, &triggered_at, &lookback];
    // Issued together: tokio-postgres pipelines them over the one connection.
    let (tenant_rows, metric_rows, event_rows, campaign_rows, opp_rows, result_rows) = futures_util::try_join!(
        tx.query_cached(
            "SELECT t.pipeline_total, t.bookings_new, t.arr_target, t.cac_max,
                        t.payback_max_months, t.gross_margin_min,
                        g.max_daily_spend, g.max_experiment_exposure_pct, g.allowed_levers,
                        g.blocked_actions,
                        c.tenant_id IS NOT NULL AS has_config, c.min_sample_size,
                        c.default_observation_window_days, c.risk_tolerance
                 FROM tenants n
                 LEFT JOIN targets t ON t.tenant_id = n.tenant_id
                 LEFT JOIN guardrails g ON g.tenant_id = n.tenant_id
                 LEFT JOIN tenant_config c ON c.tenant_id = n.tenant_id
                 WHERE n.tenant_id = $1",
            &by_tenant,
        ),
        // In the key's order (jsonb's, for dimensions), so each month's index scan hands
        // the rows over sorted: ordering by `dimension::text` instead rendered and sorted
        // all 270 rows of a 30-day window for every cycle.
        tx.query_cached(
            "SELECT metric_id, value, date, dimension FROM metric_snapshots
                 WHERE tenant_id = $1 AND date BETWEEN $2 AND $3
                 ORDER BY date, metric_id, dimension",
            &by_window,
        ),
        tx.query_cached(
            "SELECT id, type, amount, effective_date, attributed_campaign_id,
                        attributed_channel
                 FROM revenue_events
                 WHERE tenant_id = $1 AND effective_date BETWEEN $2 AND $3
                 ORDER BY effective_date, id",
            &by_window,
        ),
        tx.query_cached(
            "SELECT id, name, status, objective, budget_total, budget_spent, start_date,
                        end_date
                 FROM campaigns
                 WHERE tenant_id = $1 AND removed_by_load IS NULL
                   AND (status = 'running'
                        OR (start_date <= $3 AND (end_date IS NULL OR end_date >= $2)))
                 ORDER BY start_date, id",
            &by_window,
        ),
        tx.query_cached(
            "SELECT id, stage, amount, expected_close_date, win_probability
                 FROM opportunities
                 WHERE tenant_id = $1 AND stage NOT IN ('closed_won', 'closed_lost')
                   AND removed_by_load IS NULL
                 ORDER BY expected_close_date, id",
            &by_tenant,
        ),
        tx.query_cached(
            "SELECT action_id, target_metric, baseline_value, observed_value, delta,
                        confidence, outcome
                 FROM action_results
                 WHERE tenant_id = $1
                   AND recorded_at >= $2::timestamptz - make_interval(days => $3)
                 ORDER BY recorded_at, action_id",
            &by_recency,
        ),
    )?;
    let Some(t) = tenant_rows.first() else {
        return Ok(None);
    };

    let targets = Targets {
        pipeline_total: t.try_get(0)?,
        bookings_new: t.try_get(1)?,
        arr_target: t.try_get(2)?,
        cac_max: t.try_get(3)?,
        payback_max_months: t.try_get(4)?,
        gross_margin_min: t.try_get(5)?,
    };
    let levers: Option<Vec<String>> = t.try_get(8)?;
    let guardrails = Guardrails {
        max_daily_spend: t.try_get(6)?,
        max_experiment_exposure_pct: t.try_get(7)?,
        // The CHECK constraint admits only known levers; an unknown one cannot occur.
        allowed_levers: levers
            .unwrap_or_default()
            .iter()
            .filter_map(|l| Lever::parse(l))
            .collect(),
        blocked_actions: t.try_get(9)?,
    };
    let config = if t.try_get::<_, bool>(10)? {
        let risk: Option<String> = t.try_get(13)?;
        Some(TenantConfig {
            min_sample_size: t.try_get(11)?,
            default_observation_window_days: t.try_get(12)?,
            risk_tolerance: risk.as_deref().and_then(RiskTolerance::parse),
        })
    } else {
        None
    };

    Ok(Some(KernelInput {
        tenant_id: tenant.to_string(),
        trigger: trigger.clone(),
        analysis_window: window.to_window(),
        targets,
        guardrails,
        metrics: metric_rows.iter().map(metric).collect::<Result<_, _>>()?,
        revenue_events: event_rows.iter().map(event).collect::<Result<_, _>>()?,
        campaigns: campaign_rows
            .iter()
            .map(campaign)
            .collect::<Result<_, _>>()?,
        opportunities: opp_rows.iter().map(opportunity).collect::<Result<_, _>>()?,
        recent_action_results: Some(
            result_rows
                .iter()
                .map(action_result)
                .collect::<Result<_, _>>()?,
        ),
        config,
    }))
}

fn metric(r: &Row) -> Result<MetricPoint, StoreError> {
    let dim: serde_json::Value = r.try_get(3)?;
    let dimension = match dim {
        serde_json::Value::Object(map) if !map.is_empty() => Some(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect::<BTreeMap<_, _>>(),
        ),
        _ => None,
    };
    Ok(MetricPoint {
        metric_id: r.try_get(0)?,
        value: r.try_get(1)?,
        date: format_date(r.try_get(2)?),
        dimension,
    })
}

fn event(r: &Row) -> Result<RevenueEvent, StoreError> {
    Ok(RevenueEvent {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        amount: r.try_get(2)?,
        effective_date: format_date(r.try_get(3)?),
        attributed_campaign_id: r.try_get(4)?,
        attributed_channel: r.try_get(5)?,
    })
}

fn campaign(r: &Row) -> Result<Campaign, StoreError> {
    let end: Option<NaiveDate> = r.try_get(7)?;
    Ok(Campaign {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        status: r.try_get(2)?,
        objective: r.try_get(3)?,
        budget_total: r.try_get(4)?,
        budget_spent: r.try_get(5)?,
        start_date: format_date(r.try_get(6)?),
        end_date: end.map(format_date),
    })
}

fn opportunity(r: &Row) -> Result<Opportunity, StoreError> {
    Ok(Opportunity {
        id: r.try_get(0)?,
        stage: r.try_get(1)?,
        amount: r.try_get(2)?,
        expected_close_date: format_date(r.try_get(3)?),
        win_probability: r.try_get(4)?,
    })
}

fn action_result(r: &Row) -> Result<ActionResult, StoreError> {
    let outcome: String = r.try_get(6)?;
    Ok(ActionResult {
        action_id: r.try_get(0)?,
        target_metric: r.try_get(1)?,
        baseline_value: r.try_get(2)?,
        observed_value: r.try_get(3)?,
        delta: r.try_get(4)?,
        confidence: r.try_get(5)?,
        // The CHECK constraint admits only the contract's outcomes.
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Inconclusive),
    })
}
