//! The facts a held action is shown with: the tenant's spend cap, its campaigns' spend, the
//! latest value of the metrics its abort conditions watch, and the levers' known state.

use super::tenant::tenant_tx;
use super::{Store, StoreError};
use crate::contract::Levers;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One campaign's spend so far.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpend {
    pub status: String,
    pub spent: f64,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GlanceFacts {
    /// The tenant's `guardrails.max_daily_spend`.
    pub max_daily_spend: Option<f64>,
    pub campaigns: Vec<CampaignSpend>,
    /// Each asked metric's newest tenant-level value: (day, value).
    pub latest: BTreeMap<String, (NaiveDate, f64)>,
    pub levers: Levers,
}

impl Store {
    pub async fn glance_facts(
        &self,
        tenant: Uuid,
        metrics: &[String],
    ) -> Result<GlanceFacts, StoreError> {
        let levers = self.levers(tenant).await?;
        let mut client = self.pool.get().await?;
        let tx = tenant_tx(&mut client, tenant).await?;
        let max_daily_spend = tx
            .query_opt(
                "SELECT max_daily_spend FROM guardrails WHERE tenant_id = $1",
                &[&tenant],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .flatten();
        let campaigns = tx
            .query(
                "SELECT status, budget_spent, start_date, end_date FROM campaigns
                 WHERE tenant_id = $1 ORDER BY id",
                &[&tenant],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(CampaignSpend {
                    status: r.try_get(0)?,
                    spent: r.try_get(1)?,
                    start: r.try_get(2)?,
                    end: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let latest = tx
            .query(
                "SELECT DISTINCT ON (metric_id) metric_id, date, value FROM metric_snapshots
                 WHERE tenant_id = $1 AND metric_id = ANY($2) AND dimension = '{}'::jsonb
                 ORDER BY metric_id, date DESC",
                &[&tenant, &metrics],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
            .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
        tx.commit().await?;
        Ok(GlanceFacts {
            max_daily_spend,
            campaigns,
            latest,
            levers,
        })
    }
}
