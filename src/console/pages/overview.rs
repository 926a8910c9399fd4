//! `/`: every tenant with its latest binding constraint and what waits, failed or reverted.

use super::super::operator::{Nav, Visitor};
use super::super::state::{App, Shared};
use super::PageError;
use super::{Page, ok, time};
use crate::store::CycleBrief;
use askama::Template;
use axum::extract::State;
use chrono::Utc;
use uuid::Uuid;

struct LatestCell {
    cycle_id: Uuid,
    constraint: String,
    metric: String,
    confidence: String,
    executed_at: String,
}

impl From<&CycleBrief> for LatestCell {
    fn from(c: &CycleBrief) -> Self {
        LatestCell {
            cycle_id: c.cycle_id,
            constraint: c.binding_constraint.clone().unwrap_or_default(),
            metric: c.priority_metric.clone().unwrap_or_default(),
            confidence: c.confidence.map(|v| format!("{v:.2}")).unwrap_or_default(),
            executed_at: time(c.executed_at),
        }
    }
}

struct TenantRow {
    tenant_id: Uuid,
    latest: Option<LatestCell>,
    pending: i64,
    reverts: i64,
    failed: i64,
}

/// A trigger the worker refused, as the overview and the dead-letter page list it.
pub struct RejectedRow {
    pub when: String,
    pub message_id: String,
    pub tenant_id: Uuid,
    pub code: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    tenants: Vec<TenantRow>,
    rejected: Vec<RejectedRow>,
    pending_total: i64,
    reverts_total: i64,
    failed_total: i64,
}

/// Days the overview's counts look back.
const RECENT_DAYS: i32 = 7;

pub async fn rejected_rows(shared: &Shared, limit: i64) -> Result<Vec<RejectedRow>, PageError> {
    Ok(shared
        .console
        .store
        .rejected_triggers(limit)
        .await?
        .into_iter()
        .map(|r| RejectedRow {
            when: time(r.rejected_at),
            message_id: r.message_id,
            tenant_id: r.tenant_id,
            code: r.error_code,
            reason: r.message,
        })
        .collect())
}

pub async fn get(State(shared): App, who: Visitor) -> Page {
    let summaries = shared
        .console
        .store
        .tenant_summaries(Utc::now(), RECENT_DAYS)
        .await?;
    let tenants: Vec<TenantRow> = summaries
        .iter()
        .map(|s| TenantRow {
            tenant_id: s.tenant_id,
            latest: s.latest.as_ref().map(LatestCell::from),
            pending: s.pending_approvals,
            reverts: s.reverts,
            failed: s.failed_cycles,
        })
        .collect();
    ok(&OverviewPage {
        nav: who.nav,
        pending_total: tenants.iter().map(|t| t.pending).sum(),
        reverts_total: tenants.iter().map(|t| t.reverts).sum(),
        failed_total: tenants.iter().map(|t| t.failed).sum(),
        tenants,
        rejected: rejected_rows(&shared, 10).await?,
    })
}
