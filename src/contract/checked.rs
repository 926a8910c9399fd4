//! `Checked`: a `KernelInput` that passed `check_input`, carrying the values validation parsed
//! so nobody parses them again (and nobody needs a fallback for a value that cannot be bad).

use super::types::{Campaign, KernelInput, MetricPoint, Opportunity, RevenueEvent};
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// Only `check_input` (and `parse_input`) make one, so holding a `Checked` proves the input
/// met every input rule at the clock it was checked against. Row dates are kept in the order of
/// the input's lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    input: KernelInput,
    tenant_id: Uuid,
    window_start: NaiveDate,
    window_end: NaiveDate,
    triggered_at: DateTime<Utc>,
    metric_dates: Vec<NaiveDate>,
    event_dates: Vec<NaiveDate>,
    campaign_dates: Vec<(NaiveDate, Option<NaiveDate>)>,
    close_dates: Vec<NaiveDate>,
}

/// What validation parsed, handed over by `check_input` once there is no violation.
pub(super) struct Parsed {
    pub tenant_id: Uuid,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub triggered_at: DateTime<Utc>,
    pub metric_dates: Vec<NaiveDate>,
    pub event_dates: Vec<NaiveDate>,
    pub campaign_dates: Vec<(NaiveDate, Option<NaiveDate>)>,
    pub close_dates: Vec<NaiveDate>,
}

impl Checked {
    pub(super) fn new(input: KernelInput, p: Parsed) -> Self {
        Self {
            input,
            tenant_id: p.tenant_id,
            window_start: p.window_start,
            window_end: p.window_end,
            triggered_at: p.triggered_at,
            metric_dates: p.metric_dates,
            event_dates: p.event_dates,
            campaign_dates: p.campaign_dates,
            close_dates: p.close_dates,
        }
    }

    pub fn input(&self) -> &KernelInput {
        &self.input
    }

    pub fn into_input(self) -> KernelInput {
        self.input
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// `analysis_window.start_date`; never after `window_end`.
    pub fn window_start(&self) -> NaiveDate {
        self.window_start
    }

    pub fn window_end(&self) -> NaiveDate {
        self.window_end
    }

    pub fn triggered_at(&self) -> DateTime<Utc> {
        self.triggered_at
    }

    /// Each metric point with its `date`.
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&MetricPoint, NaiveDate)> {
        self.input
            .metrics
            .iter()
            .zip(self.metric_dates.iter().copied())
    }

    /// Each revenue event with its `effective_date`.
    pub fn revenue_events(&self) -> impl ExactSizeIterator<Item = (&RevenueEvent, NaiveDate)> {
        self.input
            .revenue_events
            .iter()
            .zip(self.event_dates.iter().copied())
    }

    /// Each campaign with its `start_date` and `end_date` (never before the start).
    pub fn campaigns(
        &self,
    ) -> impl ExactSizeIterator<Item = (&Campaign, NaiveDate, Option<NaiveDate>)> {
        self.input
            .campaigns
            .iter()
            .zip(self.campaign_dates.iter().copied())
            .map(|(c, (s, e))| (c, s, e))
    }

    /// Each opportunity with its `expected_close_date`.
    pub fn opportunities(&self) -> impl ExactSizeIterator<Item = (&Opportunity, NaiveDate)> {
        self.input
            .opportunities
            .iter()
            .zip(self.close_dates.iter().copied())
    }
}
