//! The rules of a cycle, which the store asks for inside its transaction: the spacing between
//! cycles, the kernel's decision, and the messages to publish.

use super::plan::{PlanContext, Planner};
use crate::contract::catalog::Catalog;
use crate::contract::{
    DateRange, ErrorCode, KernelError, KernelInput, KernelOutput, Levers, Violation, check_input,
    format_date,
};
use crate::kernel::{self, KernelParams};
use crate::store::{ApprovalFacts, CyclePolicy, CycleRequest, CycleStatus, LastCycle, Plan};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

/// What every cycle of this worker is judged by.
#[derive(Debug, Clone)]
pub struct Rules {
    pub catalog: std::sync::Arc<Catalog>,
    pub params: KernelParams,
    /// Spacing between decided cycles of a tenant, completed or skipped with nothing to do
    /// (`CYCLE_TOO_RECENT` below it).
    pub min_cycle_interval_hours: u32,
    /// The longest analysis window a cycle may cover (`INVALID_INPUT` beyond).
    pub max_window_days: u32,
}

impl Rules {
    /// INVALID_INPUT, with a violation on `analysis_window`, for a window longer than
    /// `max_window_days`: judged before anything is assembled for it.
    pub fn check_window(&self, window: DateRange) -> Result<(), KernelError> {
        if window.days() <= i64::from(self.max_window_days) {
            return Ok(());
        }
        Err(KernelError::invalid_input(vec![Violation::new(
            "analysis_window",
            format!(
                "{}..{} covers {} days; at most {} (kernel.max_window_days)",
                format_date(window.start()),
                format_date(window.end()),
                window.days(),
                self.max_window_days
            ),
        )]))
    }

    /// CYCLE_TOO_RECENT inside the spacing after the tenant's last decided cycle.
    pub fn admit(&self, last: Option<&LastCycle>, now: DateTime<Utc>) -> Result<(), KernelError> {
        admit(last, now, self.min_cycle_interval_hours)
    }

    /// The contract's input checks, then the kernel.
    pub fn decide(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> Result<KernelOutput, KernelError> {
        self.decide_into(input, levers, now, cycle_id, None)
    }

    /// `decide` plus the kernel's reasoning trace as text (none when the kernel never ran:
    /// the input checks refused the input).
    pub fn decide_explained(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> (Result<KernelOutput, KernelError>, Option<String>) {
        let mut trace = kernel::Trace::default();
        let result = self.decide_into(input, levers, now, cycle_id, Some(&mut trace));
        let t = &trace;
        let empty = [
            &t.findings,
            &t.scores,
            &t.decision,
            &t.learning,
            &t.candidates,
        ]
        .iter()
        .all(|v| v.is_empty())
            && t.result.is_empty();
        (result, (!empty).then(|| trace.to_string()))
    }

    fn decide_into(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
        trace: Option<&mut kernel::Trace>,
    ) -> Result<KernelOutput, KernelError> {
        let checked = check_input(input, &self.catalog, now)?;
        kernel::decide_with(
            &checked,
            levers,
            &self.catalog,
            now,
            cycle_id,
            &self.params,
            trace,
        )
    }
}

/// The policy of one trigger's cycle.
pub struct TriggerPolicy<'a> {
    pub rules: &'a Rules,
    pub planner: &'a Planner,
    pub trigger: &'a PlanContext,
    /// The cycle's clock (approval rules that depend on the tenant's age read it).
    pub now: DateTime<Utc>,
}

impl CyclePolicy for TriggerPolicy<'_> {
    fn check(&self, req: &CycleRequest) -> Result<(), KernelError> {
        self.rules.check_window(req.window)
    }

    fn admit(&self, last: Option<&LastCycle>, now: DateTime<Utc>) -> Result<(), KernelError> {
        self.rules.admit(last, now)
    }

    fn decide(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> Result<KernelOutput, KernelError> {
        self.rules.decide(input, levers, now, cycle_id)
    }

    fn decide_explained(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> (Result<KernelOutput, KernelError>, Option<String>) {
        self.rules.decide_explained(input, levers, now, cycle_id)
    }

    fn skip_reason(&self, error: &KernelError) -> Option<&'static str> {
        kernel::skip_reason(error)
    }

    fn plan(
        &self,
        cycle_id: Uuid,
        result: &Result<KernelOutput, KernelError>,
        status: CycleStatus,
        approvals: &ApprovalFacts,
    ) -> Plan {
        let held = match result {
            Ok(out) => crate::approvals::held(approvals, out, self.now),
            Err(_) => vec![],
        };
        let ids: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
        Plan {
            messages: self
                .planner
                .messages(self.trigger, cycle_id, result, status, &ids),
            held,
        }
    }
}

/// CYCLE_TOO_RECENT when the tenant's last decided cycle is younger than the interval.
pub fn admit(
    last: Option<&LastCycle>,
    now: DateTime<Utc>,
    min_interval_hours: u32,
) -> Result<(), KernelError> {
    let Some(last) = last else {
        return Ok(());
    };
    let next = last.executed_at + Duration::hours(i64::from(min_interval_hours));
    if now >= next {
        return Ok(());
    }
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Err(KernelError::new(
        ErrorCode::CycleTooRecent,
        format!(
            "last completed cycle ran at {}; the next may run from {}",
            ts(last.executed_at),
            ts(next)
        ),
    )
    .with("last_cycle_id", json!(last.cycle_id.to_string()))
    .with("last_executed_at", json!(ts(last.executed_at)))
    .with("next_allowed_at", json!(ts(next)))
    .with("min_cycle_interval_hours", json!(min_interval_hours)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::contract::parse_timestamp(s).unwrap()
    }

    #[test]
    fn a_cycle_inside_the_interval_is_too_recent() {
        let last = LastCycle {
            cycle_id: Uuid::nil(),
            executed_at: at("2026-11-26T06:00:00Z"),
        };
        assert!(admit(None, at("2026-11-26T07:00:00Z"), 12).is_ok());
        let e = admit(Some(&last), at("2026-11-26T17:59:59Z"), 12).unwrap_err();
        assert_eq!(e.code, ErrorCode::CycleTooRecent);
        assert_eq!(
            e.details.as_ref().unwrap()["next_allowed_at"],
            "2026-11-26T18:00:00Z"
        );
        assert!(admit(Some(&last), at("2026-11-26T18:00:00Z"), 12).is_ok());
        assert!(admit(Some(&last), at("2026-11-26T06:00:01Z"), 0).is_ok());
    }

    #[test]
    fn a_window_longer_than_the_limit_is_invalid_input_on_the_window() {
        let rules = Rules {
            catalog: std::sync::Arc::new(Catalog::embedded().unwrap()),
            params: KernelParams::default(),
            min_cycle_interval_hours: 12,
            max_window_days: 400,
        };
        let d = |s| crate::contract::parse_date(s).unwrap();
        let ok = DateRange::new(d("2025-01-01"), d("2026-02-04")).unwrap();
        assert_eq!(ok.days(), 400);
        assert!(rules.check_window(ok).is_ok());
        let long = DateRange::new(d("0001-01-01"), d("9999-12-31")).unwrap();
        let e = rules.check_window(long).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
        let v = e.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].path, "analysis_window");
        assert!(v[0].problem.contains("at most 400"), "{}", v[0].problem);
    }
}
