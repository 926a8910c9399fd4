//! Deviations (migrations/V10): the series the detector reads, the detections it records, the
//! one trigger a tenant's day may raise through the outbox, and the listing. No rules here:
//! which points count and what deviates is decided by the caller (src/deviation).

use super::cached::Cached;
use super::tenant::{set_tenant, set_tenants, tenant_tx};
use super::webhooks;
use super::{OutboxMessage, OutboxRow, Store, StoreError, outbox};
use crate::contract::{Notification, NotifyEvent};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One detection with the numbers that decided it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviationRow {
    pub metric_id: String,
    pub day: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub band_lower: f64,
    pub band_upper: f64,
    pub k: f64,
    /// `mstl_ets` or `rolling_median`.
    pub method: String,
    pub days_used: i32,
    pub log_scale: bool,
    pub severity: f64,
    pub harmful: bool,
}

/// A stored detection, for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredDeviation {
    pub tenant_id: Uuid,
    #[serde(flatten)]
    pub row: DeviationRow,
    pub trigger_message_id: Option<String>,
    pub detected_at: DateTime<Utc>,
}

/// A tenant's undimensioned daily series by metric id, oldest first.
pub type DailySeries = BTreeMap<String, Vec<(NaiveDate, f64)>>;

impl Store {
    /// For each tenant of `tenants`, in order: whether it has not opted out of detection,
    /// and its undimensioned daily series from `since` on (missing days are simply absent).
    /// One transaction, scoped to all of them.
    pub async fn deviation_series_batch(
        &self,
        tenants: &[Uuid],
        since: NaiveDate,
    ) -> Result<Vec<(Uuid, bool, DailySeries)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        set_tenants(&tx, tenants).await?;
        let off: std::collections::HashSet<Uuid> = tx
            .query_cached(
                "SELECT tenant_id FROM tenant_settings
                  WHERE tenant_id = ANY($1) AND NOT deviation_enabled",
                &[&tenants],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        // Streamed into the series as the rows arrive: the rows of a batch of tenants' whole
        // histories, held at once, were most of the worker's peak memory.
        let st = tx
            .prepare_cached(
                "SELECT tenant_id, metric_id, date, value FROM metric_snapshots
                  WHERE tenant_id = ANY($1) AND dimension = '{}'::jsonb AND date >= $2",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenants, &since];
        let rows = tx.query_raw(&st, params).await?;
        futures_util::pin_mut!(rows);
        let mut by_tenant: BTreeMap<Uuid, DailySeries> = BTreeMap::new();
        while let Some(r) = rows.try_next().await? {
            let tenant: Uuid = r.try_get(0)?;
            if off.contains(&tenant) {
                continue;
            }
            let series = by_tenant.entry(tenant).or_default();
            let metric: &str = r.try_get(1)?;
            let point = (r.try_get(2)?, r.try_get(3)?);
            match series.get_mut(metric) {
                Some(days) => days.push(point),
                None => {
                    series.insert(metric.to_owned(), vec![point]);
                }
            }
        }
        tx.commit().await?;
        // Sorted here, not by the database: a sort of every row of the batch would spill.
        for series in by_tenant.values_mut() {
            for days in series.values_mut() {
                days.sort_unstable_by_key(|d| d.0);
            }
        }
        Ok(tenants
            .iter()
            .map(|t| {
                let enabled = !off.contains(t);
                (*t, enabled, by_tenant.remove(t).unwrap_or_default())
            })
            .collect())
    }

    /// Records a tenant's detections of one day (a re-run updates their numbers) and, given a
    /// trigger for `trigger_metric`, puts it in the outbox unless that message id is already
    /// there: at most one trigger per tenant per day when the caller names it by the day.
    /// Returns the new outbox row, to relay at once.
    pub async fn record_deviations(
        &self,
        tenant: Uuid,
        rows: &[DeviationRow],
        trigger: Option<(&str, &OutboxMessage)>,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        for d in rows {
            tx.execute(
                "INSERT INTO deviations (tenant_id, metric_id, day, observed, expected,
                     band_lower, band_upper, k, method, days_used, log_scale, severity, harmful)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (tenant_id, metric_id, day) DO UPDATE SET
                     observed = EXCLUDED.observed, expected = EXCLUDED.expected,
                     band_lower = EXCLUDED.band_lower, band_upper = EXCLUDED.band_upper,
                     k = EXCLUDED.k, method = EXCLUDED.method, days_used = EXCLUDED.days_used,
                     log_scale = EXCLUDED.log_scale, severity = EXCLUDED.severity,
                     harmful = EXCLUDED.harmful",
                &[
                    &tenant,
                    &d.metric_id,
                    &d.day,
                    &d.observed,
                    &d.expected,
                    &d.band_lower,
                    &d.band_upper,
                    &d.k,
                    &d.method,
                    &d.days_used,
                    &d.log_scale,
                    &d.severity,
                    &d.harmful,
                ],
            )
            .await?;
            if d.harmful {
                let n = Notification::new(
                    NotifyEvent::DeviationDetected,
                    format!("{tenant}:{}:{}", d.metric_id, d.day),
                    Some(tenant),
                    Utc::now(),
                )
                .with_details(serde_json::json!({
                    "metric_id": d.metric_id,
                    "day": d.day,
                    "observed": d.observed,
                    "expected": d.expected,
                    "band_lower": d.band_lower,
                    "band_upper": d.band_upper,
                    "severity": (d.severity * 100.0).round() / 100.0,
                    "method": d.method,
                }));
                webhooks::record(&tx, &n).await?;
            }
        }
        let mut queued = None;
        if let Some((metric_id, m)) = trigger {
            queued = outbox::insert_once_uncycled(&tx, tenant, m).await?;
            if queued.is_some()
                && let Some(d) = rows.iter().find(|d| d.metric_id == metric_id)
            {
                tx.execute(
                    "UPDATE deviations SET trigger_message_id = $4
                     WHERE tenant_id = $1 AND metric_id = $2 AND day = $3",
                    &[&tenant, &d.metric_id, &d.day, &m.message_id],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Every tenant's id, in order.
    pub async fn tenant_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query("SELECT revenue_os.tenant_ids()", &[]).await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Opts a tenant in or out of deviation detection.
    pub async fn set_deviation_enabled(
        &self,
        tenant: Uuid,
        enabled: bool,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        tx.execute(
            "INSERT INTO tenant_settings (tenant_id, deviation_enabled) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE SET deviation_enabled = EXCLUDED.deviation_enabled,
                 updated_at = now()",
            &[&tenant, &enabled],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Detections from `since` on (all days when None), of one tenant or of every tenant,
    /// newest day first.
    pub async fn deviations(
        &self,
        tenant: Option<Uuid>,
        since: Option<NaiveDate>,
    ) -> Result<Vec<StoredDeviation>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tenants: Vec<Uuid> = match tenant {
            Some(t) => vec![t],
            None => tx
                .query("SELECT revenue_os.tenant_ids()", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?,
        };
        let mut out = Vec::new();
        for t in tenants {
            set_tenant(&tx, t).await?;
            let rows = tx
                .query(
                    "SELECT metric_id, day, observed, expected, band_lower, band_upper, k,
                            method, days_used, log_scale, severity, harmful,
                            trigger_message_id, detected_at
                     FROM deviations WHERE tenant_id = $1 AND ($2::date IS NULL OR day >= $2)
                     ORDER BY day DESC, severity DESC, metric_id",
                    &[&t, &since],
                )
                .await?;
            for r in &rows {
                out.push(StoredDeviation {
                    tenant_id: t,
                    row: DeviationRow {
                        metric_id: r.try_get(0)?,
                        day: r.try_get(1)?,
                        observed: r.try_get(2)?,
                        expected: r.try_get(3)?,
                        band_lower: r.try_get(4)?,
                        band_upper: r.try_get(5)?,
                        k: r.try_get(6)?,
                        method: r.try_get(7)?,
                        days_used: r.try_get(8)?,
                        log_scale: r.try_get(9)?,
                        severity: r.try_get(10)?,
                        harmful: r.try_get(11)?,
                    },
                    trigger_message_id: r.try_get(12)?,
                    detected_at: r.try_get(13)?,
                });
            }
        }
        tx.commit().await?;
        out.sort_by(|a, b| {
            b.row
                .day
                .cmp(&a.row.day)
                .then(a.tenant_id.cmp(&b.tenant_id))
        });
        Ok(out)
    }
}
