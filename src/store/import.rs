//! `import`: a KernelInput-shaped tenant document into the tables, in one transaction.

use super::migrate::sync_metric_dictionary;
use super::retention::{Partitioned, ensure_months, months};
use super::tenant::tenant_tx;
use super::{Store, StoreError, tenant_lock_key};
use crate::contract::catalog::Catalog;
use crate::contract::{KernelInput, parse_date};
use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    /// Upserts a validated tenant document (`contract::validate_content`) in one transaction. Targets, guardrails and config are set to the document's;
    /// metrics upsert by (metric, date, dimension); events, campaigns, opportunities and action
    /// results by id. Rows absent from the document are kept (a backfill adds, never prunes).
    pub async fn import(&self, input: &KernelInput, catalog: &Catalog) -> Result<(), StoreError> {
        let tenant = parse_uuid(&input.tenant_id)?;
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        // Same lock as a cycle: a cycle never assembles a half-imported tenant.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&tenant_lock_key(tenant)],
        )
        .await?;
        // The document's months exist before anything is written (migrations/V17).
        let (metric_months, event_months) = document_months(input)?;
        ensure_months(&tx, Partitioned::MetricSnapshots, &metric_months).await?;
        ensure_months(&tx, Partitioned::RevenueEvents, &event_months).await?;
        sync_metric_dictionary(&tx, catalog).await?;
        upsert_tenant(&tx, tenant, input).await?;
        upsert_metrics(&tx, tenant, input).await?;
        upsert_events(&tx, tenant, input).await?;
        upsert_campaigns(&tx, tenant, input).await?;
        upsert_opportunities(&tx, tenant, input).await?;
        upsert_action_results(&tx, tenant, input).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The months the document's metrics and revenue events fall in.
fn document_months(input: &KernelInput) -> Result<(Vec<NaiveDate>, Vec<NaiveDate>), StoreError> {
    let metrics = input
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| date(format!("metrics[{i}].date"), &m.date))
        .collect::<Result<Vec<_>, _>>()?;
    let events = input
        .revenue_events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            date(
                format!("revenue_events[{i}].effective_date"),
                &e.effective_date,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((months(metrics), months(events)))
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(s).map_err(|_| unchecked(format!("tenant_id '{s}' is not a UUID")))
}

fn date(path: String, s: &str) -> Result<NaiveDate, StoreError> {
    parse_date(s).ok_or_else(|| unchecked(format!("{path} '{s}' is not a YYYY-MM-DD date")))
}

/// The caller validates before importing; a value that still does not parse is a bug there.
fn unchecked(what: String) -> StoreError {
    StoreError::Corrupt(format!("import of an unvalidated document: {what}"))
}

async fn upsert_tenant(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tenants (tenant_id) VALUES ($1)
         ON CONFLICT (tenant_id) DO UPDATE SET updated_at = now()",
        &[&tenant],
    )
    .await?;
    let t = &input.targets;
    tx.execute(
        "INSERT INTO targets (tenant_id, pipeline_total, bookings_new, arr_target, cac_max,
                              payback_max_months, gross_margin_min)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id) DO UPDATE SET
            pipeline_total = EXCLUDED.pipeline_total, bookings_new = EXCLUDED.bookings_new,
            arr_target = EXCLUDED.arr_target, cac_max = EXCLUDED.cac_max,
            payback_max_months = EXCLUDED.payback_max_months,
            gross_margin_min = EXCLUDED.gross_margin_min, updated_at = now()",
        &[
            &tenant,
            &t.pipeline_total,
            &t.bookings_new,
            &t.arr_target,
            &t.cac_max,
            &t.payback_max_months,
            &t.gross_margin_min,
        ],
    )
    .await?;
    let g = &input.guardrails;
    let levers: Vec<&str> = g.allowed_levers.iter().map(|l| l.as_str()).collect();
    tx.execute(
        "INSERT INTO guardrails (tenant_id, max_daily_spend, max_experiment_exposure_pct,
                                 allowed_levers, blocked_actions)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET
            max_daily_spend = EXCLUDED.max_daily_spend,
            max_experiment_exposure_pct = EXCLUDED.max_experiment_exposure_pct,
            allowed_levers = EXCLUDED.allowed_levers, blocked_actions = EXCLUDED.blocked_actions,
            updated_at = now()",
        &[
            &tenant,
            &g.max_daily_spend,
            &g.max_experiment_exposure_pct,
            &levers,
            &g.blocked_actions,
        ],
    )
    .await?;
    match &input.config {
        None => {
            tx.execute("DELETE FROM tenant_config WHERE tenant_id = $1", &[&tenant])
                .await?;
        }
        Some(c) => {
            let risk = c.risk_tolerance.map(|r| r.as_str());
            tx.execute(
                "INSERT INTO tenant_config (tenant_id, min_sample_size,
                                            default_observation_window_days, risk_tolerance)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id) DO UPDATE SET
                    min_sample_size = EXCLUDED.min_sample_size,
                    default_observation_window_days = EXCLUDED.default_observation_window_days,
                    risk_tolerance = EXCLUDED.risk_tolerance, updated_at = now()",
                &[
                    &tenant,
                    &c.min_sample_size,
                    &c.default_observation_window_days,
                    &risk,
                ],
            )
            .await?;
        }
    }
    Ok(())
}

async fn upsert_metrics(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    // The key is not unique within a document; the last point wins (one statement cannot
    // upsert the same row twice).
    let mut index: HashMap<(&str, &str, String), usize> = HashMap::new();
    let mut ids = Vec::new();
    let mut dates = Vec::new();
    let mut dims = Vec::new();
    let mut values = Vec::new();
    for (i, m) in input.metrics.iter().enumerate() {
        let dim = match &m.dimension {
            Some(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            None => Value::Object(Default::default()),
        };
        let key = (m.metric_id.as_str(), m.date.as_str(), dim.to_string());
        let d = date(format!("metrics[{i}].date"), &m.date)?;
        match index.get(&key) {
            Some(&at) => values[at] = m.value,
            None => {
                index.insert(key, ids.len());
                ids.push(m.metric_id.as_str());
                dates.push(d);
                dims.push(dim);
                values.push(m.value);
            }
        }
    }
    tx.execute(
        "INSERT INTO metric_snapshots (tenant_id, metric_id, date, dimension, value)
         SELECT $1, * FROM UNNEST($2::text[], $3::date[], $4::jsonb[], $5::float8[])
         ON CONFLICT (tenant_id, metric_id, date, dimension) DO UPDATE SET
            value = EXCLUDED.value, updated_at = now()
         WHERE metric_snapshots.value IS DISTINCT FROM EXCLUDED.value",
        &[&tenant, &ids, &dates, &dims, &values],
    )
    .await?;
    Ok(())
}

async fn upsert_events(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    let ev = &input.revenue_events;
    let ids: Vec<&str> = ev.iter().map(|e| e.id.as_str()).collect();
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
    let amounts: Vec<f64> = ev.iter().map(|e| e.amount).collect();
    let dates = ev
        .iter()
        .enumerate()
        .map(|(i, e)| {
            date(
                format!("revenue_events[{i}].effective_date"),
                &e.effective_date,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let campaigns: Vec<Option<&str>> = ev
        .iter()
        .map(|e| e.attributed_campaign_id.as_deref())
        .collect();
    let channels: Vec<Option<&str>> = ev.iter().map(|e| e.attributed_channel.as_deref()).collect();
    // By id: a restated date moves the row to its month. The partitioned key holds the date,
    // so (tenant_id, id) is kept unique here (migrations/V17): the update finds the ids stored,
    // the insert adds the rest, with other importers of the tenant held off by its advisory
    // lock and loads by this statement's ROW EXCLUSIVE lock (their SHARE ROW EXCLUSIVE waits).
    let doc = "UNNEST($2::text[], $3::text[], $4::float8[], $5::date[], $6::text[], $7::text[])
               AS d(id, type, amount, effective_date, attributed_campaign_id, attributed_channel)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &tenant, &ids, &kinds, &amounts, &dates, &campaigns, &channels,
    ];
    tx.execute(
        &format!(
            "UPDATE revenue_events t SET
                type = d.type, amount = d.amount, effective_date = d.effective_date,
                attributed_campaign_id = d.attributed_campaign_id,
                attributed_channel = d.attributed_channel, updated_at = now()
             FROM {doc}
             WHERE t.tenant_id = $1 AND t.id = d.id
               AND (t.type, t.amount, t.effective_date, t.attributed_campaign_id,
                    t.attributed_channel)
                   IS DISTINCT FROM
                   (d.type, d.amount, d.effective_date, d.attributed_campaign_id,
                    d.attributed_channel)"
        ),
        &params,
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO revenue_events (tenant_id, id, type, amount, effective_date,
                                         attributed_campaign_id, attributed_channel)
             SELECT $1, d.* FROM {doc}
             WHERE NOT EXISTS (SELECT 1 FROM revenue_events t
                               WHERE t.tenant_id = $1 AND t.id = d.id)"
        ),
        &params,
    )
    .await?;
    Ok(())
}

async fn upsert_campaigns(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    let cs = &input.campaigns;
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    let statuses: Vec<&str> = cs.iter().map(|c| c.status.as_str()).collect();
    let objectives: Vec<&str> = cs.iter().map(|c| c.objective.as_str()).collect();
    let totals: Vec<f64> = cs.iter().map(|c| c.budget_total).collect();
    let spent: Vec<f64> = cs.iter().map(|c| c.budget_spent).collect();
    let starts = cs
        .iter()
        .enumerate()
        .map(|(i, c)| date(format!("campaigns[{i}].start_date"), &c.start_date))
        .collect::<Result<Vec<_>, _>>()?;
    let ends = cs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.end_date
                .as_deref()
                .map(|e| date(format!("campaigns[{i}].end_date"), e))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    tx.execute(
        "INSERT INTO campaigns (tenant_id, id, name, status, objective, budget_total,
                                budget_spent, start_date, end_date)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[],
                                  $7::float8[], $8::date[], $9::date[])
         ON CONFLICT (tenant_id, id) DO UPDATE SET
            name = EXCLUDED.name, status = EXCLUDED.status, objective = EXCLUDED.objective,
            budget_total = EXCLUDED.budget_total, budget_spent = EXCLUDED.budget_spent,
            start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date, updated_at = now()",
        &[
            &tenant,
            &ids,
            &names,
            &statuses,
            &objectives,
            &totals,
            &spent,
            &starts,
            &ends,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_opportunities(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    let os = &input.opportunities;
    let ids: Vec<&str> = os.iter().map(|o| o.id.as_str()).collect();
    let stages: Vec<&str> = os.iter().map(|o| o.stage.as_str()).collect();
    let amounts: Vec<f64> = os.iter().map(|o| o.amount).collect();
    let closes = os
        .iter()
        .enumerate()
        .map(|(i, o)| {
            date(
                format!("opportunities[{i}].expected_close_date"),
                &o.expected_close_date,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let probs: Vec<f64> = os.iter().map(|o| o.win_probability).collect();
    tx.execute(
        "INSERT INTO opportunities (tenant_id, id, stage, amount, expected_close_date,
                                    win_probability)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::float8[], $5::date[], $6::float8[])
         ON CONFLICT (tenant_id, id) DO UPDATE SET
            stage = EXCLUDED.stage, amount = EXCLUDED.amount,
            expected_close_date = EXCLUDED.expected_close_date,
            win_probability = EXCLUDED.win_probability, updated_at = now()
         WHERE (opportunities.stage, opportunities.amount, opportunities.expected_close_date,
                opportunities.win_probability)
               IS DISTINCT FROM
               (EXCLUDED.stage, EXCLUDED.amount, EXCLUDED.expected_close_date,
                EXCLUDED.win_probability)",
        &[&tenant, &ids, &stages, &amounts, &closes, &probs],
    )
    .await?;
    Ok(())
}

async fn upsert_action_results(
    tx: &Transaction<'_>,
    tenant: Uuid,
    input: &KernelInput,
) -> Result<(), StoreError> {
    let Some(results) = &input.recent_action_results else {
        return Ok(());
    };
    // action_id is not checked for uniqueness by validation; the last report wins.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::new();
    for r in results {
        match index.get(r.action_id.as_str()) {
            Some(&at) => rows[at] = r,
            None => {
                index.insert(r.action_id.as_str(), rows.len());
                rows.push(r);
            }
        }
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.action_id.as_str()).collect();
    let metrics: Vec<&str> = rows.iter().map(|r| r.target_metric.as_str()).collect();
    let base: Vec<f64> = rows.iter().map(|r| r.baseline_value).collect();
    let obs: Vec<f64> = rows.iter().map(|r| r.observed_value).collect();
    let delta: Vec<f64> = rows.iter().map(|r| r.delta).collect();
    let conf: Vec<f64> = rows.iter().map(|r| r.confidence).collect();
    let outcome: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    // recorded_at moves only when the report changed, so re-importing is a no-op.
    tx.execute(
        "INSERT INTO action_results (tenant_id, action_id, target_metric, baseline_value,
                                     observed_value, delta, confidence, outcome)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::float8[], $5::float8[],
                                  $6::float8[], $7::float8[], $8::text[])
         ON CONFLICT (tenant_id, action_id) DO UPDATE SET
            target_metric = EXCLUDED.target_metric, baseline_value = EXCLUDED.baseline_value,
            observed_value = EXCLUDED.observed_value, delta = EXCLUDED.delta,
            confidence = EXCLUDED.confidence, outcome = EXCLUDED.outcome, recorded_at = now()
         WHERE (action_results.target_metric, action_results.baseline_value,
                action_results.observed_value, action_results.delta, action_results.confidence,
                action_results.outcome)
               IS DISTINCT FROM
               (EXCLUDED.target_metric, EXCLUDED.baseline_value, EXCLUDED.observed_value,
                EXCLUDED.delta, EXCLUDED.confidence, EXCLUDED.outcome)",
        &[
            &tenant, &ids, &metrics, &base, &obs, &delta, &conf, &outcome,
        ],
    )
    .await?;
    Ok(())
}
