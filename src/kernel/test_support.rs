//! Small tenants for the kernel's unit tests: a healthy 30-day baseline that each test bends
//! one way, then the kernel's own stages run on it.

use super::KernelParams;
use super::data::Index;
use super::diagnose::{self, Diagnosis};
use super::health::{self, Finding};
use super::plays::{Candidate, Ctx};
use crate::contract::catalog::Catalog;
use crate::contract::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use std::sync::LazyLock;

pub const WINDOW_DAYS: usize = 30;

pub static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::embedded().unwrap());
static PARAMS: LazyLock<KernelParams> = LazyLock::new(KernelParams::default);

pub fn now() -> DateTime<Utc> {
    parse_timestamp("2026-11-26T06:05:00Z").unwrap()
}

/// `YYYY-MM-DD` of the window's day `i` (0 = 2026-10-27, 29 = 2026-11-25, the window end).
pub fn day(i: i64) -> String {
    let start = NaiveDate::from_ymd_opt(2026, 10, 27).unwrap();
    (start + Duration::days(i)).format("%Y-%m-%d").to_string()
}

/// A tenant meeting every target with flat series: pipeline 1,000,000 (target 900,000),
/// bookings 10,000 a day (target 300,000 per 30 days), CAC 3,000 (max 3,500); all levers.
pub struct Tenant(pub KernelInput);

impl Tenant {
    pub fn new() -> Self {
        let input: KernelInput = serde_json::from_value(json!({
            "tenant_id": "7d3c1a52-2f4e-4c8e-9a51-0b6f2d9e4c11",
            "trigger": {"type": "scheduled", "source": "test", "triggered_at": "2026-11-26T06:00:00Z"},
            "analysis_window": {"start_date": day(0), "end_date": day(WINDOW_DAYS as i64 - 1)},
            "targets": {"pipeline_total": 900000, "bookings_new": 300000, "cac_max": 3500},
            "guardrails": {"allowed_levers": ["campaigns", "channels", "sequences", "pricing"]},
            "metrics": [], "revenue_events": [], "campaigns": [], "opportunities": []
        }))
        .unwrap();
        Tenant(input)
            .flat("pipeline_total", 1_000_000.0)
            .flat("bookings_new", 10_000.0)
            .flat("cac_blended", 3_000.0)
    }

    /// Pipeline at half its target: demand binds.
    pub fn short() -> Self {
        Self::new().flat("pipeline_total", 450_000.0)
    }

    /// Replaces a metric's undimensioned points with one per window day.
    pub fn series(mut self, metric: &str, value: impl Fn(usize) -> f64) -> Self {
        self.0.metrics.retain(|m| m.metric_id != metric);
        for i in 0..WINDOW_DAYS {
            self.0.metrics.push(MetricPoint {
                metric_id: metric.into(),
                value: value(i),
                date: day(i as i64),
                dimension: None,
            });
        }
        self
    }

    pub fn flat(self, metric: &str, value: f64) -> Self {
        self.series(metric, |_| value)
    }

    /// Drops the metric's points on the given window days.
    pub fn without_days(mut self, metric: &str, days: &[usize]) -> Self {
        let dates: Vec<String> = days.iter().map(|&i| day(i as i64)).collect();
        self.0
            .metrics
            .retain(|m| m.metric_id != metric || !dates.contains(&m.date));
        self
    }

    pub fn point(mut self, metric: &str, i: usize, value: f64) -> Self {
        self.0.metrics.push(MetricPoint {
            metric_id: metric.into(),
            value,
            date: day(i as i64),
            dimension: None,
        });
        self
    }

    pub fn targets(mut self, edit: impl FnOnce(&mut Targets)) -> Self {
        edit(&mut self.0.targets);
        self
    }

    pub fn guardrails(mut self, edit: impl FnOnce(&mut Guardrails)) -> Self {
        edit(&mut self.0.guardrails);
        self
    }

    /// A campaign started 29 days before the window end, so `budget_spent / 30` is its daily
    /// spend; running unless `status` says otherwise.
    pub fn campaign(mut self, id: &str, status: &str, total: f64, spent: f64) -> Self {
        self.0.campaigns.push(Campaign {
            id: id.into(),
            name: id.into(),
            status: status.into(),
            objective: "pipeline".into(),
            budget_total: total,
            budget_spent: spent,
            start_date: day(0),
            end_date: None,
        });
        self
    }

    /// A revenue event on the window's last day.
    pub fn revenue(mut self, amount: f64, campaign: Option<&str>, channel: Option<&str>) -> Self {
        let n = self.0.revenue_events.len();
        self.0.revenue_events.push(RevenueEvent {
            id: format!("ev_{n}"),
            kind: "new_business".into(),
            amount,
            effective_date: day(WINDOW_DAYS as i64 - 1),
            attributed_campaign_id: campaign.map(Into::into),
            attributed_channel: channel.map(Into::into),
        });
        self
    }

    /// An opportunity expected to close `days_after_end` days after the window end.
    pub fn opportunity(mut self, win_probability: f64, days_after_end: i64) -> Self {
        let n = self.0.opportunities.len();
        self.0.opportunities.push(Opportunity {
            id: format!("opp_{n}"),
            stage: "proposal".into(),
            amount: 20_000.0,
            expected_close_date: day(WINDOW_DAYS as i64 - 1 + days_after_end),
            win_probability,
        });
        self
    }

    /// Enough volume behind any constraint for a full volume factor (principle 4): 30
    /// channel-attributed revenue events and 30 open opportunities.
    pub fn volume(mut self) -> Self {
        for _ in 0..30 {
            self = self.revenue(1_000.0, None, Some("email"));
        }
        for _ in 0..30 {
            self = self.opportunity(0.3, 40);
        }
        self
    }

    pub fn checked(self) -> Checked {
        check_input(self.0, &CATALOG, now()).unwrap_or_else(|e| panic!("invalid tenant: {e:?}"))
    }
}

pub fn index(checked: &Checked) -> Index<'_> {
    Index::build(checked, &super::data::NO_LEVERS, &PARAMS)
}

/// Findings and diagnosis of a tenant, as `decide` computes them.
pub fn diagnosed(checked: &Checked) -> (Index<'_>, Vec<Finding>, Diagnosis) {
    let ix = index(checked);
    let findings = health::findings(&ix, &CATALOG);
    let diag = diagnose::diagnose(&ix, &CATALOG, &findings);
    (ix, findings, diag)
}

/// Runs `play` on a tenant's diagnosis and returns what it formed.
pub fn formed(
    checked: &Checked,
    play: impl FnOnce(&Ctx, &[Finding], &mut Vec<Candidate>, &mut Vec<(String, String)>),
) -> (Vec<Candidate>, Vec<(String, String)>) {
    let (ix, findings, diag) = diagnosed(checked);
    let ctx = Ctx {
        ix: &ix,
        diag: &diag,
        catalog: &CATALOG,
    };
    let (mut out, mut drops) = (Vec::new(), Vec::new());
    play(&ctx, &findings, &mut out, &mut drops);
    (out, drops)
}

pub fn ids(cands: &[Candidate]) -> Vec<&str> {
    cands.iter().map(|k| k.action.action_id.as_str()).collect()
}
