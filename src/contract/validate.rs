//! Input decoding and validation: pure, clock injected, every violation collected. What the
//! checks parse is kept in the `Checked` they return, so it is never parsed again.

use super::checked::{Checked, Parsed};
use super::error::{KernelError, Violation};
use super::parse::{parse_date, parse_timestamp};
use super::schema;
use super::types::*;
use crate::contract::catalog::Catalog;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use std::collections::HashSet;
use uuid::Uuid;

/// How far in the past `trigger.triggered_at` may lie (contract input rule 2).
pub const MAX_TRIGGER_AGE: Duration = Duration::hours(24);
/// Clock skew tolerated for a trigger stamped in the future.
pub const MAX_TRIGGER_SKEW: Duration = Duration::minutes(5);

/// Decodes a KernelInput from bytes. Structural problems (syntax, unknown fields, wrong types,
/// unknown enum values) come back as one `INVALID_INPUT` listing all of them.
pub fn decode_input(bytes: &[u8]) -> Result<KernelInput, KernelError> {
    let err = match serde_json::from_slice::<KernelInput>(bytes) {
        Ok(input) => return Ok(input),
        Err(e) => e,
    };
    if !err.is_data() {
        let problem = if bytes.iter().all(u8::is_ascii_whitespace) {
            "body is empty".to_owned()
        } else {
            err.to_string()
        };
        return Err(
            KernelError::invalid_input(vec![Violation::new("$", problem)])
                .with("line", json!(err.line()))
                .with("column", json!(err.column())),
        );
    }
    // Slow path, errors only: list every structural violation, not just serde's first.
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Err(KernelError::invalid_input(vec![Violation::new(
                "$",
                e.to_string(),
            )]));
        }
    };
    let mut violations = schema::structural_violations(schema::Document::Input, &value);
    if violations.is_empty() {
        let path = serde_path_to_error::deserialize::<_, KernelInput>(&value)
            .err()
            .map(|e| e.path().to_string())
            .unwrap_or_else(|| "$".into());
        violations.push(Violation::new(path, err.to_string()));
    }
    Err(KernelError::invalid_input(violations))
}

/// Decodes and checks: the whole input gate of `kernel::run`.
pub fn parse_input(
    bytes: &[u8],
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Checked, KernelError> {
    check_input(decode_input(bytes)?, catalog, now)
}

/// Semantic validation of a decoded input against the contract's rules 2–5 and the value rules.
/// Rule 3 (required metrics present) is checked last and gives `INSUFFICIENT_DATA`. On success
/// the input comes back as a `Checked`, with the tenant id, window, trigger time and row dates
/// parsed.
pub fn check_input(
    input: KernelInput,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Checked, KernelError> {
    let mut v = Checker::default();
    let seen = v.content(&input, catalog);
    if let Some(t) = seen.triggered_at {
        v.trigger_time(&input.trigger.triggered_at, t, now);
    }
    if !v.out.is_empty() {
        v.out.sort();
        v.out.dedup();
        return Err(KernelError::invalid_input(v.out));
    }
    let present: HashSet<&str> = input.metrics.iter().map(|m| m.metric_id.as_str()).collect();
    let missing: Vec<&str> = catalog
        .required_metrics
        .iter()
        .map(String::as_str)
        .filter(|id| !present.contains(id))
        .collect();
    if !missing.is_empty() {
        return Err(KernelError::new(
            ErrorCode::InsufficientData,
            format!("required metrics absent: {}", missing.join(", ")),
        )
        .with("missing_metrics", json!(missing)));
    }
    let parsed = seen.complete().ok_or_else(|| {
        KernelError::internal("input passed validation but a checked value did not parse")
    })?;
    Ok(Checked::new(input, parsed))
}

/// Validation without the clock-dependent trigger-age rule, for `import` (a backfill document
/// carries a trigger only because it is KernelInput-shaped).
pub fn validate_content(input: &KernelInput, catalog: &Catalog) -> Result<(), KernelError> {
    let mut v = Checker::default();
    v.content(input, catalog);
    if v.out.is_empty() {
        Ok(())
    } else {
        v.out.sort();
        v.out.dedup();
        Err(KernelError::invalid_input(v.out))
    }
}

/// The contract's rules for a tenant's settings alone (`ingest --kind tenants`), paths as in
/// a document (`targets.cac_max`).
pub fn validate_tenant_settings(
    targets: &Targets,
    guardrails: &Guardrails,
    config: Option<&TenantConfig>,
) -> Vec<Violation> {
    let mut v = Checker::default();
    v.settings(targets, guardrails, config);
    v.out.sort();
    v.out.dedup();
    v.out
}

/// A violation's path, built only when there is a violation: valid documents with 100k rows
/// must not pay for a string per field.
trait Loc {
    fn loc(self) -> String;
}

impl Loc for &str {
    fn loc(self) -> String {
        self.to_owned()
    }
}

impl Loc for String {
    fn loc(self) -> String {
        self
    }
}

impl<F: FnOnce() -> String> Loc for F {
    fn loc(self) -> String {
        self()
    }
}

#[derive(Default)]
struct Checker {
    out: Vec<Violation>,
}

/// What `content` parsed; a value is `None` only where a violation was recorded.
#[derive(Default)]
struct Seen {
    tenant_id: Option<Uuid>,
    triggered_at: Option<DateTime<Utc>>,
    window_start: Option<NaiveDate>,
    window_end: Option<NaiveDate>,
    metric_dates: Vec<Option<NaiveDate>>,
    event_dates: Vec<Option<NaiveDate>>,
    campaign_dates: Vec<Option<(NaiveDate, Option<NaiveDate>)>>,
    close_dates: Vec<Option<NaiveDate>>,
}

impl Seen {
    /// Everything parsed, or `None` if anything did not (then a violation says why).
    fn complete(self) -> Option<Parsed> {
        Some(Parsed {
            tenant_id: self.tenant_id?,
            triggered_at: self.triggered_at?,
            window_start: self.window_start?,
            window_end: self.window_end?,
            metric_dates: self.metric_dates.into_iter().collect::<Option<_>>()?,
            event_dates: self.event_dates.into_iter().collect::<Option<_>>()?,
            campaign_dates: self.campaign_dates.into_iter().collect::<Option<_>>()?,
            close_dates: self.close_dates.into_iter().collect::<Option<_>>()?,
        })
    }
}

impl Checker {
    fn push(&mut self, path: impl Loc, problem: impl Into<String>) {
        self.out.push(Violation::new(path.loc(), problem));
    }

    fn date(&mut self, path: impl Loc, s: &str) -> Option<NaiveDate> {
        let d = parse_date(s);
        if d.is_none() {
            self.push(path, format!("'{s}' is not a YYYY-MM-DD date"));
        }
        d
    }

    fn finite(&mut self, path: impl Loc, x: f64) -> bool {
        if !x.is_finite() {
            self.push(path, "must be a finite number");
        }
        x.is_finite()
    }

    fn non_negative(&mut self, path: impl Loc, x: f64) {
        if !x.is_finite() {
            self.push(path, "must be a finite number");
        } else if x < 0.0 {
            self.push(path, format!("{x} must be >= 0"));
        }
    }

    fn range(&mut self, path: impl Loc, x: f64, lo: f64, hi: f64) {
        if !x.is_finite() {
            self.push(path, "must be a finite number");
        } else if !(lo..=hi).contains(&x) {
            self.push(path, format!("{x} must be between {lo} and {hi}"));
        }
    }

    fn non_empty(&mut self, path: impl Loc, s: &str) {
        if s.trim().is_empty() {
            self.push(path, "must not be empty");
        }
    }

    fn unique<'a>(&mut self, list: &str, ids: impl Iterator<Item = &'a str>) {
        let mut seen = HashSet::new();
        for (i, id) in ids.enumerate() {
            if !seen.insert(id) {
                self.push(|| format!("{list}[{i}].id"), format!("duplicate id '{id}'"));
            }
        }
    }

    /// `raw` is the trigger's timestamp as sent, `t` the same parsed.
    fn trigger_time(&mut self, raw: &str, t: DateTime<Utc>, now: DateTime<Utc>) {
        if t < now - MAX_TRIGGER_AGE {
            self.push(
                "trigger.triggered_at",
                format!("{raw} is more than 24 hours before {}", now.to_rfc3339()),
            );
        } else if t > now + MAX_TRIGGER_SKEW {
            self.push(
                "trigger.triggered_at",
                format!("{raw} is more than 5 minutes after {}", now.to_rfc3339()),
            );
        }
    }

    fn content(&mut self, input: &KernelInput, catalog: &Catalog) -> Seen {
        let mut seen = Seen {
            tenant_id: Uuid::try_parse(&input.tenant_id).ok(),
            triggered_at: parse_timestamp(&input.trigger.triggered_at),
            ..Seen::default()
        };
        if seen.tenant_id.is_none() {
            self.push("tenant_id", format!("'{}' is not a UUID", input.tenant_id));
        }
        self.non_empty("trigger.source", &input.trigger.source);
        if seen.triggered_at.is_none() {
            self.push(
                "trigger.triggered_at",
                format!(
                    "'{}' is not an RFC 3339 timestamp",
                    input.trigger.triggered_at
                ),
            );
        }

        let w = &input.analysis_window;
        let start = self.date("analysis_window.start_date", &w.start_date);
        let end = self.date("analysis_window.end_date", &w.end_date);
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            self.push(
                "analysis_window",
                format!("start_date {s} is after end_date {e}"),
            );
        }
        (seen.window_start, seen.window_end) = (start, end);

        self.settings(&input.targets, &input.guardrails, input.config.as_ref());

        for (i, m) in input.metrics.iter().enumerate() {
            if !catalog.is_metric(&m.metric_id) {
                self.push(
                    || format!("metrics[{i}].metric_id"),
                    format!("'{}' is not in the metric dictionary", m.metric_id),
                );
            }
            self.finite(|| format!("metrics[{i}].value"), m.value);
            let d = self.date(|| format!("metrics[{i}].date"), &m.date);
            seen.metric_dates.push(d);
        }

        for (i, e) in input.revenue_events.iter().enumerate() {
            self.non_empty(|| format!("revenue_events[{i}].id"), &e.id);
            self.finite(|| format!("revenue_events[{i}].amount"), e.amount);
            let d = self.date(
                || format!("revenue_events[{i}].effective_date"),
                &e.effective_date,
            );
            seen.event_dates.push(d);
        }
        self.unique(
            "revenue_events",
            input.revenue_events.iter().map(|e| e.id.as_str()),
        );

        for (i, c) in input.campaigns.iter().enumerate() {
            self.non_empty(|| format!("campaigns[{i}].id"), &c.id);
            self.non_negative(|| format!("campaigns[{i}].budget_total"), c.budget_total);
            self.non_negative(|| format!("campaigns[{i}].budget_spent"), c.budget_spent);
            let start = self.date(|| format!("campaigns[{i}].start_date"), &c.start_date);
            let end = c
                .end_date
                .as_deref()
                .map(|e| self.date(|| format!("campaigns[{i}].end_date"), e));
            if let (Some(s), Some(Some(e))) = (start, end)
                && e < s
            {
                self.push(
                    || format!("campaigns[{i}].end_date"),
                    format!("{e} is before start_date {s}"),
                );
            }
            // An end date that was given must have parsed; one that was not stays None.
            seen.campaign_dates.push(match end {
                None => start.map(|s| (s, None)),
                Some(e) => start.zip(e).map(|(s, e)| (s, Some(e))),
            });
        }
        self.unique("campaigns", input.campaigns.iter().map(|c| c.id.as_str()));

        for (i, o) in input.opportunities.iter().enumerate() {
            self.non_empty(|| format!("opportunities[{i}].id"), &o.id);
            self.non_negative(|| format!("opportunities[{i}].amount"), o.amount);
            let d = self.date(
                || format!("opportunities[{i}].expected_close_date"),
                &o.expected_close_date,
            );
            seen.close_dates.push(d);
            self.range(
                || format!("opportunities[{i}].win_probability"),
                o.win_probability,
                0.0,
                1.0,
            );
        }
        self.unique(
            "opportunities",
            input.opportunities.iter().map(|o| o.id.as_str()),
        );

        for (i, r) in input.recent_action_results.iter().flatten().enumerate() {
            let p = |f: &'static str| move || format!("recent_action_results[{i}].{f}");
            self.non_empty(p("action_id"), &r.action_id);
            if !catalog.is_metric(&r.target_metric) {
                self.push(
                    p("target_metric"),
                    format!("'{}' is not in the metric dictionary", r.target_metric),
                );
            }
            self.finite(p("baseline_value"), r.baseline_value);
            self.finite(p("observed_value"), r.observed_value);
            self.finite(p("delta"), r.delta);
            self.range(p("confidence"), r.confidence, 0.0, 1.0);
        }

        seen
    }

    /// Targets, guardrails and config: the tenant's settings, also loaded alone by
    /// `ingest --kind tenants`.
    fn settings(
        &mut self,
        targets: &Targets,
        guardrails: &Guardrails,
        config: Option<&TenantConfig>,
    ) {
        let defined = targets.defined();
        if defined.is_empty() {
            self.push("targets", "at least one target must be defined");
        }
        for (field, value) in defined {
            let path = format!("targets.{field}");
            if !self.finite(path.clone(), value) {
                continue;
            }
            if value <= 0.0 {
                self.push(path, format!("{value} must be > 0"));
            } else if field == "gross_margin_min" && value > 1.0 {
                self.push(path, format!("{value} is a fraction and must be at most 1"));
            }
        }

        let g = guardrails;
        if g.allowed_levers.is_empty() {
            self.push("guardrails.allowed_levers", "must not be empty");
        }
        if let Some(x) = g.max_daily_spend {
            self.non_negative("guardrails.max_daily_spend", x);
        }
        if let Some(x) = g.max_experiment_exposure_pct {
            self.range("guardrails.max_experiment_exposure_pct", x, 0.0, 100.0);
        }
        for (i, b) in g.blocked_actions.iter().flatten().enumerate() {
            if ActionType::parse(b).is_none() {
                let known: Vec<&str> = ActionType::ALL.iter().map(|t| t.as_str()).collect();
                self.push(
                    || format!("guardrails.blocked_actions[{i}]"),
                    format!("'{b}' is not an action type ({})", known.join(", ")),
                );
            }
        }

        if let Some(c) = config {
            if let Some(n) = c.min_sample_size {
                self.whole("config.min_sample_size", n, 1.0, 10_000_000.0);
            }
            if let Some(n) = c.default_observation_window_days {
                self.whole("config.default_observation_window_days", n, 1.0, 365.0);
            }
        }
    }

    fn whole(&mut self, path: &str, x: f64, lo: f64, hi: f64) {
        if self.finite(path, x) && (x.fract() != 0.0 || !(lo..=hi).contains(&x)) {
            self.push(
                path,
                format!("{x} must be a whole number from {lo} to {hi}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const FIXTURE: &str = include_str!("../../tests/fixtures/valid/demand_bound.json");

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-11-26T06:05:00Z").unwrap()
    }

    fn catalog() -> Catalog {
        Catalog::embedded().unwrap()
    }

    /// Runs the full gate on the fixture after `edit`, returning the error.
    fn reject(edit: impl FnOnce(&mut Value)) -> KernelError {
        let mut doc: Value = serde_json::from_str(FIXTURE).unwrap();
        edit(&mut doc);
        let bytes = serde_json::to_vec(&doc).unwrap();
        parse_input(&bytes, &catalog(), now()).expect_err("must be rejected")
    }

    fn paths(e: &KernelError) -> Vec<String> {
        e.violations().into_iter().map(|v| v.path).collect()
    }

    fn assert_invalid(edit: impl FnOnce(&mut Value), path: &str) {
        let e = reject(edit);
        assert_eq!(e.code, ErrorCode::InvalidInput, "{e:?}");
        assert!(
            paths(&e).iter().any(|p| p == path),
            "{path} not in {:?}",
            paths(&e)
        );
    }

    #[test]
    fn fixture_is_valid() {
        parse_input(FIXTURE.as_bytes(), &catalog(), now()).unwrap();
    }

    #[test]
    fn check_input_keeps_what_it_parsed() {
        let input = decode_input(FIXTURE.as_bytes()).unwrap();
        let c = check_input(input.clone(), &catalog(), now()).unwrap();
        let date = |s: &str| parse_date(s).unwrap();
        assert_eq!(c.tenant_id().to_string(), input.tenant_id);
        assert_eq!(c.window_start(), date(&input.analysis_window.start_date));
        assert_eq!(c.window_end(), date(&input.analysis_window.end_date));
        assert_eq!(
            Some(c.triggered_at()),
            parse_timestamp(&input.trigger.triggered_at)
        );
        assert_eq!(c.metrics().len(), input.metrics.len());
        assert!(c.metrics().all(|(m, d)| d == date(&m.date)));
        assert!(
            c.revenue_events()
                .all(|(e, d)| d == date(&e.effective_date))
        );
        assert!(
            c.opportunities()
                .all(|(o, d)| d == date(&o.expected_close_date))
        );
        assert!(
            c.campaigns()
                .all(|(k, s, e)| s == date(&k.start_date) && e == k.end_date.as_deref().map(date))
        );
        assert_eq!(c.into_input(), input);
    }

    #[test]
    fn tenant_id_must_be_a_uuid() {
        assert_invalid(|d| d["tenant_id"] = "t-1".into(), "tenant_id");
    }

    #[test]
    fn trigger_older_than_24h_is_rejected() {
        assert_invalid(
            |d| d["trigger"]["triggered_at"] = "2026-11-25T06:04:59Z".into(),
            "trigger.triggered_at",
        );
    }

    #[test]
    fn trigger_at_the_24h_edge_is_accepted() {
        let mut doc: Value = serde_json::from_str(FIXTURE).unwrap();
        doc["trigger"]["triggered_at"] = "2026-11-25T06:05:00Z".into();
        parse_input(&serde_json::to_vec(&doc).unwrap(), &catalog(), now()).unwrap();
    }

    #[test]
    fn trigger_more_than_5_minutes_ahead_is_rejected() {
        assert_invalid(
            |d| d["trigger"]["triggered_at"] = "2026-11-26T06:10:01Z".into(),
            "trigger.triggered_at",
        );
    }

    #[test]
    fn timestamps_must_be_rfc3339() {
        assert_invalid(
            |d| d["trigger"]["triggered_at"] = "2026-11-26 06:00".into(),
            "trigger.triggered_at",
        );
    }

    #[test]
    fn trigger_source_must_not_be_empty() {
        assert_invalid(|d| d["trigger"]["source"] = " ".into(), "trigger.source");
    }

    #[test]
    fn dates_must_be_real_and_shaped() {
        assert_invalid(
            |d| d["metrics"][0]["date"] = "2026-02-29".into(),
            "metrics[0].date",
        );
        assert_invalid(
            |d| d["metrics"][1]["date"] = "2026-1-5".into(),
            "metrics[1].date",
        );
    }

    #[test]
    fn window_must_not_be_reversed() {
        assert_invalid(
            |d| d["analysis_window"]["start_date"] = "2026-12-01".into(),
            "analysis_window",
        );
    }

    #[test]
    fn at_least_one_target() {
        assert_invalid(|d| d["targets"] = serde_json::json!({}), "targets");
    }

    #[test]
    fn targets_must_be_positive_and_margin_a_fraction() {
        assert_invalid(
            |d| d["targets"]["pipeline_total"] = (-1).into(),
            "targets.pipeline_total",
        );
        assert_invalid(
            |d| d["targets"]["gross_margin_min"] = 70.into(),
            "targets.gross_margin_min",
        );
    }

    #[test]
    fn unknown_target_field_is_rejected() {
        assert_invalid(|d| d["targets"]["pipline_total"] = 5.into(), "targets");
    }

    #[test]
    fn levers_must_not_be_empty() {
        assert_invalid(
            |d| d["guardrails"]["allowed_levers"] = serde_json::json!([]),
            "guardrails.allowed_levers",
        );
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        assert_invalid(
            |d| d["guardrails"]["allowed_levers"] = serde_json::json!(["tv"]),
            "guardrails.allowed_levers[0]",
        );
        assert_invalid(|d| d["trigger"]["type"] = "cron".into(), "trigger.type");
        assert_invalid(
            |d| d["config"]["risk_tolerance"] = "yolo".into(),
            "config.risk_tolerance",
        );
    }

    #[test]
    fn blocked_actions_must_be_action_types() {
        assert_invalid(
            |d| d["guardrails"]["blocked_actions"] = serde_json::json!(["scale", "nuke"]),
            "guardrails.blocked_actions[1]",
        );
    }

    #[test]
    fn spend_and_exposure_caps_are_bounded() {
        assert_invalid(
            |d| d["guardrails"]["max_daily_spend"] = (-10).into(),
            "guardrails.max_daily_spend",
        );
        assert_invalid(
            |d| d["guardrails"]["max_experiment_exposure_pct"] = 101.into(),
            "guardrails.max_experiment_exposure_pct",
        );
    }

    #[test]
    fn win_probability_is_a_fraction() {
        assert_invalid(
            |d| d["opportunities"][0]["win_probability"] = (-0.1).into(),
            "opportunities[0].win_probability",
        );
    }

    #[test]
    fn budgets_are_non_negative() {
        assert_invalid(
            |d| d["campaigns"][0]["budget_spent"] = (-1).into(),
            "campaigns[0].budget_spent",
        );
    }

    #[test]
    fn result_confidence_is_a_fraction() {
        assert_invalid(
            |d| {
                d["recent_action_results"] = serde_json::json!([{
                    "action_id": "a", "target_metric": "win_rate", "baseline_value": 1,
                    "observed_value": 1, "delta": 0, "confidence": 2, "outcome": "failed"
                }])
            },
            "recent_action_results[0].confidence",
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        assert_invalid(
            |d| d["campaigns"][1]["id"] = d["campaigns"][0]["id"].clone(),
            "campaigns[1].id",
        );
    }

    #[test]
    fn config_counts_are_whole_numbers() {
        assert_invalid(
            |d| d["config"]["min_sample_size"] = 10.5.into(),
            "config.min_sample_size",
        );
    }

    #[test]
    fn explicit_null_is_rejected() {
        assert_invalid(|d| d["config"] = Value::Null, "config");
    }

    #[test]
    fn metric_ids_come_from_the_dictionary() {
        assert_invalid(
            |d| d["metrics"][0]["metric_id"] = "revenue_vibes".into(),
            "metrics[0].metric_id",
        );
    }

    #[test]
    fn several_problems_are_reported_together() {
        let e = reject(|d| {
            d["tenant_id"] = "nope".into();
            d["guardrails"]["allowed_levers"] = serde_json::json!([]);
            d["analysis_window"]["end_date"] = "2026-01-01".into();
        });
        assert_eq!(
            paths(&e),
            ["analysis_window", "guardrails.allowed_levers", "tenant_id"]
        );
    }

    #[test]
    fn structural_problems_are_reported_together() {
        let e = reject(|d| {
            d["trigger"]["type"] = "cron".into();
            d["targets"]["pipline_total"] = 1.into();
            d["campaigns"][0]["budget_total"] = "lots".into();
        });
        assert_eq!(e.code, ErrorCode::InvalidInput);
        let p = paths(&e);
        for want in ["trigger.type", "targets", "campaigns[0].budget_total"] {
            assert!(p.iter().any(|x| x == want), "{want} not in {p:?}");
        }
    }

    #[test]
    fn missing_required_metric_is_insufficient_data() {
        let e = reject(|d| {
            let m = d["metrics"].as_array_mut().unwrap();
            m.retain(|x| x["metric_id"] != "bookings_new");
        });
        assert_eq!(e.code, ErrorCode::InsufficientData);
        assert_eq!(
            e.details.unwrap()["missing_metrics"],
            serde_json::json!(["bookings_new"])
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        for body in [&b""[..], b"{", b"{\"tenant_id\": NaN}", b"\xff\xfe"] {
            let e = parse_input(body, &catalog(), now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput);
            let d = e.details.unwrap();
            assert!(d.contains_key("line") && d.contains_key("column"), "{d:?}");
        }
    }
}
