//! Deviation detection for the tenants a load touched: read each tenant's daily series,
//! assess its newest day (src/deviation, pure), record what deviated, and queue at most one
//! `metric_deviation` trigger per tenant per day in the outbox. The relay publishes it like
//! any other row; the worker then runs that tenant's cycle, under the usual spacing rule.

use crate::broker::Topology;
use crate::config::DeviationSettings;
use crate::contract::{Catalog, DateRange, Trigger, TriggerMessage, TriggerType};
use crate::deviation::{self, Assessment, MAX_HISTORY_DAYS, Params};
use crate::store::{DeviationRow, OutboxMessage, Store, StoreError};
use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use uuid::Uuid;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviationPass {
    pub tenants: usize,
    /// Metric series assessed.
    pub assessed: usize,
    /// Deviations recorded (harmful and helpful).
    pub recorded: usize,
    /// Triggers newly queued (a re-run of the same day queues none).
    pub triggers: usize,
    /// The tenants whose newest day has a deviation trigger, new or queued before.
    pub triggered: Vec<Uuid>,
}

/// The AMQP message_id of a tenant's deviation trigger for `day`: one per tenant per day.
pub fn trigger_message_id(tenant: Uuid, day: NaiveDate) -> String {
    format!("deviation:{tenant}:{day}")
}

/// Tenants whose series one read fetches (one transaction, scoped to all of them).
const TENANTS_PER_READ: usize = 250;

/// Detect for each of `tenants` as of its newest metric day.
pub async fn detect_for(
    store: &Store,
    catalog: &Catalog,
    settings: &DeviationSettings,
    topology: &Topology,
    tenants: &[Uuid],
    now: DateTime<Utc>,
) -> Result<DeviationPass, StoreError> {
    let mut pass = DeviationPass::default();
    if !settings.enabled {
        return Ok(pass);
    }
    let params = Params { k: settings.k };
    let since = now
        .date_naive()
        .checked_sub_days(Days::new(MAX_HISTORY_DAYS.unsigned_abs() + 1))
        .unwrap_or(NaiveDate::MIN);
    for chunk in tenants.chunks(TENANTS_PER_READ) {
        let read = store.deviation_series_batch(chunk, since).await?;
        for (tenant, enabled, series) in read {
            pass.tenants += 1;
            if enabled {
                assess(
                    store, catalog, topology, tenant, &series, params, now, &mut pass,
                )
                .await?;
            }
        }
    }
    Ok(pass)
}

/// One tenant's detection on its newest day: recorded, and its trigger queued, when a
/// metric deviates.
#[allow(clippy::too_many_arguments)]
async fn assess(
    store: &Store,
    catalog: &Catalog,
    topology: &Topology,
    tenant: Uuid,
    series: &crate::store::DailySeries,
    params: Params,
    now: DateTime<Utc>,
    pass: &mut DeviationPass,
) -> Result<(), StoreError> {
    // The tenant's day: the newest any metric reached. Metrics behind it are stale, not
    // assessed on an old day again.
    let Some(day) = series.values().filter_map(|s| s.last().map(|p| p.0)).max() else {
        return Ok(());
    };
    let refs = series.iter().map(|(id, s)| (id.as_str(), s.as_slice()));
    let all = deviation::assess_tenant(catalog, day, refs, params);
    pass.assessed += all.len();
    let rows: Vec<DeviationRow> = all
        .iter()
        .filter(|a| a.surprise.is_some())
        .map(row)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let trigger = deviation::pick_trigger(&all).map(|a| {
        (
            a.metric_id.as_str(),
            trigger_message(topology, tenant, a, now),
        )
    });
    pass.recorded += rows.len();
    if trigger.is_some() {
        pass.triggered.push(tenant);
    }
    let queued = store
        .record_deviations(tenant, &rows, trigger.as_ref().map(|(id, m)| (*id, m)))
        .await?;
    if queued.is_some() {
        pass.triggers += 1;
        tracing::info!(%tenant, %day, metric = trigger.as_ref().map(|t| t.0),
            "deviation: metric_deviation trigger queued");
    }
    Ok(())
}

fn row(a: &Assessment) -> DeviationRow {
    DeviationRow {
        metric_id: a.metric_id.clone(),
        day: a.day,
        observed: a.observed,
        expected: a.expected,
        band_lower: a.lower,
        band_upper: a.upper,
        k: a.k,
        method: a.method.as_str().to_owned(),
        days_used: i32::try_from(a.days_used).unwrap_or(i32::MAX),
        log_scale: a.log_scale,
        severity: a.severity,
        harmful: a.is_harmful(),
    }
}

/// The deviation's trigger: routing key `metric_deviation.<tenant>`, source
/// `deviation:<metric_id>`, the 30 days ending on the day.
fn trigger_message(
    topology: &Topology,
    tenant: Uuid,
    a: &Assessment,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let window = a
        .day
        .checked_sub_days(Days::new(29))
        .and_then(|start| DateRange::new(start, a.day));
    let trigger = Trigger {
        kind: TriggerType::MetricDeviation,
        source: format!("deviation:{}", a.metric_id),
        triggered_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    queued_trigger(
        topology,
        tenant,
        trigger,
        window,
        trigger_message_id(tenant, a.day),
    )
}

/// A trigger the product raises itself, as the trigger client would publish it, for the
/// outbox: on the triggers exchange, routing key `<type>.<tenant>`, under `message_id`.
pub fn queued_trigger(
    topology: &Topology,
    tenant: Uuid,
    trigger: Trigger,
    window: Option<DateRange>,
    message_id: String,
) -> OutboxMessage {
    let routing_key = format!("{}.{tenant}", trigger.kind);
    let msg = TriggerMessage {
        tenant_id: tenant.to_string(),
        trigger,
        analysis_window: window.map(|w| w.to_window()),
    };
    OutboxMessage {
        exchange: topology.triggers_exchange.clone(),
        routing_key,
        message_id,
        headers: serde_json::json!({ "tenant_id": tenant.to_string() }),
        body: serde_json::to_vec(&msg).unwrap_or_default(),
        action_id: None,
        stored: crate::store::StoredBody::Verbatim,
    }
}
