//! The watchdog's judgement of one applied action, as of the tenant's newest metric day:
//! its abort conditions day by day (failed / passed / error), then, once the observation
//! window has passed, its outcome. Pure: the store supplies the facts, the caller applies
//! the verdict.

use super::stats::{self, Welch};
use crate::contract::{AbortCondition, Action, ActionType, ImpactDirection, Operator, Outcome};
use chrono::{Days, NaiveDate};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Days of missing data in a row that escalate to a person instead of reverting.
pub const ESCALATE_AFTER_ERROR_DAYS: usize = 2;
/// Autocorrelation is clamped to this before inflating the standard error.
pub const MAX_RHO: f64 = 0.9;

/// A metric's daily values (the tenant-level series, no dimension).
pub type Series = BTreeMap<NaiveDate, f64>;

/// What the watchdog knows of one action.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub action: &'a Action,
    /// The first day fully after the change (the day after it was applied).
    pub first_day: NaiveDate,
    /// The tenant's newest metric day: the watchdog's "today".
    pub as_of: NaiveDate,
    /// Daily series of the condition metrics and the target metric.
    pub metrics: &'a BTreeMap<String, Series>,
    /// What the executor applied (`after`) and what it replaced (`before`, or `inverse`).
    pub applied_after: Option<&'a Value>,
    pub restore: Option<&'a Value>,
    pub already_escalated: bool,
}

/// One day of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measurement {
    Failed,
    Passed,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub value: Option<f64>,
    pub measurement: Measurement,
}

impl ConditionCheck {
    /// The days of the run that trips the condition (its last `consecutive_days`).
    pub fn tripping_days(&self) -> &[Day] {
        let n = (self.condition.consecutive_days.max(1) as usize).min(self.days.len());
        &self.days[self.days.len() - n..]
    }
}

/// One abort condition over the days watched so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionCheck {
    pub condition: AbortCondition,
    pub days: Vec<Day>,
    /// Failed days in a row at the end (a passed or an error day resets it).
    pub failed_streak: usize,
    pub error_streak: usize,
    /// The longest run of days without a value (a backfill escalates as live data would).
    pub longest_error_run: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub outcome: Outcome,
    pub before: Vec<f64>,
    pub after: Vec<f64>,
    pub welch: WelchOut,
    /// Lag-1 autocorrelation of the residuals, clamped to [0, MAX_RHO].
    pub rho: f64,
    /// SE × √((1+ρ)/(1−ρ)).
    pub se_inflated: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The change as a percentage of the baseline mean.
    pub change_pct: f64,
    /// 1 − the two-sided p-value, with the inflated SE.
    pub confidence: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WelchOut {
    pub mean_before: f64,
    pub mean_after: f64,
    pub diff: f64,
    pub se: f64,
    pub df: f64,
}

impl From<Welch> for WelchOut {
    fn from(w: Welch) -> Self {
        Self {
            mean_before: w.mean_before,
            mean_after: w.mean_after,
            diff: w.diff,
            se: w.se,
            df: w.df,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to do yet.
    Watching { checks: Vec<ConditionCheck> },
    /// A condition held for its `consecutive_days`: restore the prior value.
    Abort {
        checks: Vec<ConditionCheck>,
        tripped: usize,
        current: Value,
        restore: Value,
    },
    /// Data went missing two days in a row: a person should look; nothing is reverted.
    Escalate {
        checks: Vec<ConditionCheck>,
        metric: String,
    },
    /// The observation window is over and the outcome was measured.
    Measured {
        checks: Vec<ConditionCheck>,
        measured: Measured,
    },
    /// The window is over but the expected effect is below what it can detect.
    Unmeasurable {
        checks: Vec<ConditionCheck>,
        detectable_pct: Option<f64>,
        expected_pct: f64,
    },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Watching { .. } => "watching",
            Verdict::Abort { .. } => "abort",
            Verdict::Escalate { .. } => "escalate",
            Verdict::Measured { .. } => "measured",
            Verdict::Unmeasurable { .. } => "unmeasurable",
        }
    }
}

fn holds(op: Operator, value: f64, threshold: f64) -> bool {
    match op {
        Operator::Gt => value > threshold,
        Operator::Lt => value < threshold,
        Operator::Ge => value >= threshold,
        Operator::Le => value <= threshold,
    }
}

fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// Each condition, day by day from the first day after the change to `as_of`.
pub fn check(facts: &Facts) -> Vec<ConditionCheck> {
    let empty = Series::new();
    facts
        .action
        .guardrails
        .abort_conditions
        .iter()
        .map(|c| {
            let series = facts.metrics.get(&c.metric_id).unwrap_or(&empty);
            let mut out = ConditionCheck {
                condition: c.clone(),
                days: vec![],
                failed_streak: 0,
                error_streak: 0,
                longest_error_run: 0,
            };
            for date in days(facts.first_day, facts.as_of) {
                let value = series.get(&date).copied();
                let measurement = match value {
                    None => Measurement::Error,
                    Some(v) if holds(c.operator, v, c.threshold) => Measurement::Failed,
                    Some(_) => Measurement::Passed,
                };
                // Missing data never counts as failure, and breaks a run of failures.
                match measurement {
                    Measurement::Failed => {
                        out.failed_streak += 1;
                        out.error_streak = 0;
                    }
                    Measurement::Passed => {
                        out.failed_streak = 0;
                        out.error_streak = 0;
                    }
                    Measurement::Error => {
                        out.failed_streak = 0;
                        out.error_streak += 1;
                        out.longest_error_run = out.longest_error_run.max(out.error_streak);
                    }
                }
                out.days.push(Day {
                    date,
                    value,
                    measurement,
                });
            }
            out
        })
        .collect()
}

/// Abort first (a condition met), then escalation, then the outcome once the window is over.
pub fn judge(facts: &Facts) -> Verdict {
    let checks = check(facts);
    if let Some(tripped) = checks
        .iter()
        .position(|c| c.failed_streak >= c.condition.consecutive_days.max(1) as usize)
    {
        let current = facts
            .applied_after
            .cloned()
            .unwrap_or_else(|| facts.action.proposed_change.new_value.clone());
        let restore = facts
            .restore
            .cloned()
            .unwrap_or_else(|| facts.action.proposed_change.current_value.clone());
        return Verdict::Abort {
            checks,
            tripped,
            current,
            restore,
        };
    }
    if !facts.already_escalated
        && let Some(c) = checks
            .iter()
            .find(|c| c.longest_error_run >= ESCALATE_AFTER_ERROR_DAYS)
    {
        let metric = c.condition.metric_id.clone();
        return Verdict::Escalate { checks, metric };
    }
    let window = u64::from(facts.action.observation_window_days.max(1));
    let window_end = facts
        .first_day
        .checked_add_days(Days::new(window - 1))
        .unwrap_or(NaiveDate::MAX);
    if facts.as_of < window_end {
        return Verdict::Watching { checks };
    }
    measure(facts, checks, window)
}

/// Whether the watchdog watches actions of this kind at all. Experiments are judged by
/// their own analysis plan at its end, not reverted day by day: the one place that says so.
pub fn watched(kind: ActionType) -> bool {
    kind != ActionType::Experiment
}

/// The metrics a judgement of `action` reads: its abort conditions' and its target.
pub fn needed_metrics(action: &Action) -> Vec<String> {
    let mut wanted: Vec<String> = action
        .guardrails
        .abort_conditions
        .iter()
        .map(|c| c.metric_id.clone())
        .collect();
    wanted.push(action.expected_impact.metric_id.clone());
    wanted.sort();
    wanted.dedup();
    wanted
}

/// The days an outcome compares after the change with: as many whole-week days as the
/// observation window measures, ending two days before `first_day` (the change day itself
/// is neither before nor after).
fn before_window(first_day: NaiveDate, window_days: u32) -> Option<(NaiveDate, NaiveDate)> {
    let n = sample_days(u64::from(window_days.max(1)));
    let end = first_day.pred_opt()?.pred_opt()?;
    Some((end.checked_sub_days(Days::new(n - 1))?, end))
}

/// The first day of history a judgement of `action` reads (its before-window's start), so a
/// long observation window is never measured against a truncated baseline.
pub fn history_from(action: &Action, first_day: NaiveDate) -> NaiveDate {
    before_window(first_day, action.observation_window_days).map_or(first_day, |(start, _)| start)
}

/// Whole weeks of the window when it has at least one, which cancels day-of-week effects.
pub fn sample_days(window: u64) -> u64 {
    if window >= 7 { window / 7 * 7 } else { window }
}

fn measure(facts: &Facts, checks: Vec<ConditionCheck>, window: u64) -> Verdict {
    let impact = &facts.action.expected_impact;
    let expected_pct = impact.magnitude_pct.abs();
    let n = sample_days(window);
    let empty = Series::new();
    let series = facts.metrics.get(&impact.metric_id).unwrap_or(&empty);
    let before: Vec<f64> = before_window(facts.first_day, facts.action.observation_window_days)
        .map(|(s, e)| days(s, e).filter_map(|d| series.get(&d).copied()).collect())
        .unwrap_or_default();
    let after_end = facts
        .first_day
        .checked_add_days(Days::new(n - 1))
        .unwrap_or(facts.as_of);
    let after: Vec<f64> = days(facts.first_day, after_end)
        .filter_map(|d| series.get(&d).copied())
        .collect();
    let Some(w) = stats::welch(&before, &after) else {
        return Verdict::Unmeasurable {
            checks,
            detectable_pct: None,
            expected_pct,
        };
    };
    let rho = stats::lag1_autocorrelation(&[&before, &after]).clamp(0.0, MAX_RHO);
    let se = w.se * ((1.0 + rho) / (1.0 - rho)).sqrt();
    let t975 = stats::t_quantile(0.975, w.df);
    // The smallest change this window detects 80% of the time at the 5% level.
    let detectable = (t975 + stats::t_quantile(0.8, w.df)) * se;
    let baseline = w.mean_before.abs();
    let detectable_pct = (baseline > 0.0).then(|| detectable / baseline * 100.0);
    if detectable_pct.is_none_or(|d| expected_pct < d) {
        return Verdict::Unmeasurable {
            checks,
            detectable_pct,
            expected_pct,
        };
    }
    let (ci_low, ci_high) = (w.diff - t975 * se, w.diff + t975 * se);
    let change_pct = w.diff / baseline * 100.0;
    let p = 2.0 * (1.0 - stats::t_cdf((w.diff / se).abs(), w.df));
    let up = impact.direction == ImpactDirection::Increase;
    let (expected_side, harmful_side) = if up {
        (ci_low > 0.0, ci_high < 0.0)
    } else {
        (ci_high < 0.0, ci_low > 0.0)
    };
    let big_enough = change_pct.abs() >= expected_pct / 2.0;
    let outcome = if expected_side && big_enough {
        Outcome::Successful
    } else if harmful_side {
        Outcome::Failed
    } else {
        Outcome::Inconclusive
    };
    Verdict::Measured {
        checks,
        measured: Measured {
            outcome,
            before,
            after,
            welch: w.into(),
            rho,
            se_inflated: se,
            ci_low,
            ci_high,
            change_pct,
            confidence: (1.0 - p).clamp(0.0, 1.0),
        },
    }
}

fn num(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    let text = format!("{}", r.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    // Thousands separators, as the kernel writes numbers.
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    let sign = if r < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

fn md(d: NaiveDate) -> String {
    d.format("%m-%d").to_string()
}

fn value(v: &Value) -> String {
    v.as_f64().map_or_else(|| v.to_string(), num)
}

/// The one sentence a person reads.
pub fn sentence(action: &Action, verdict: &Verdict) -> String {
    let field = &action.proposed_change.field;
    match verdict {
        Verdict::Watching { checks } => {
            let worst = checks.iter().max_by_key(|c| c.failed_streak);
            match worst {
                Some(c) if c.failed_streak > 0 => format!(
                    "{} {} {} on {} of {} required consecutive days; watching.",
                    c.condition.metric_id,
                    c.condition.operator,
                    num(c.condition.threshold),
                    c.failed_streak,
                    c.condition.consecutive_days
                ),
                _ => "every abort condition passed; watching.".to_owned(),
            }
        }
        Verdict::Abort {
            checks,
            tripped,
            current,
            restore,
        } => {
            let c = &checks[*tripped];
            let last = c.tripping_days();
            let n = last.len();
            let values: Vec<String> = last.iter().filter_map(|d| d.value.map(num)).collect();
            let above = match c.condition.operator {
                Operator::Gt | Operator::Ge => "above",
                Operator::Lt | Operator::Le => "below",
            };
            format!(
                "{} was {} on {}..{}, {above} {} for {n} consecutive days; reverting {field} {} → {}.",
                c.condition.metric_id,
                join(&values),
                md(last[0].date),
                md(last[n - 1].date),
                num(c.condition.threshold),
                value(current),
                value(restore)
            )
        }
        Verdict::Escalate { checks, metric } => {
            let c = checks.iter().find(|c| &c.condition.metric_id == metric);
            let missing: Vec<String> = c
                .map(|c| {
                    c.days
                        .iter()
                        .filter(|d| d.measurement == Measurement::Error)
                        .map(|d| md(d.date))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{metric} has no value on {}: its abort condition cannot be checked; escalated to a person, nothing reverted.",
                missing.join(", ")
            )
        }
        Verdict::Measured { measured: m, .. } => format!(
            "{} averaged {} over {} days after the change vs {} over {} days before ({:+.1}%, 95% interval {} to {}, ρ {:.2}); expected {} {}%: {}.",
            action.expected_impact.metric_id,
            num(m.welch.mean_after),
            m.after.len(),
            num(m.welch.mean_before),
            m.before.len(),
            m.change_pct,
            num(m.ci_low),
            num(m.ci_high),
            m.rho,
            action.expected_impact.direction,
            num(action.expected_impact.magnitude_pct),
            m.outcome
        ),
        Verdict::Unmeasurable {
            detectable_pct,
            expected_pct,
            ..
        } => match detectable_pct {
            Some(d) => format!(
                "the expected {}% change in {} is below the {:.1}% this window can detect; not measured.",
                num(*expected_pct),
                action.expected_impact.metric_id,
                d
            ),
            None => format!(
                "{} has too few values around the change to measure it; not measured.",
                action.expected_impact.metric_id
            ),
        },
    }
}

fn join(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static AFTER: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!(621.41));
    static BEFORE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!(517.85));

    fn action(direction: &str, magnitude: f64, conditions: Value) -> Action {
        serde_json::from_value(serde_json::json!({
            "action_id": "campaigns.scale.cmp_002.budget_daily", "priority": 1,
            "owner_subsystem": "campaigns", "type": "scale", "target_metric": "pipeline_total",
            "target_entity": {"type": "campaign", "id": "cmp_002"},
            "proposed_change": {"field": "budget_daily", "current_value": 517.85, "new_value": 621.41},
            "guardrails": {"abort_conditions": conditions},
            "observation_window_days": 14,
            "expected_impact": {"metric_id": "pipeline_total", "direction": direction,
                                "magnitude_pct": magnitude, "confidence": 0.6},
            "notes_for_humans": "test"
        }))
        .unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// `before` ends the day before the change day; `after` starts the day after it.
    fn series(first_day: NaiveDate, before: &[f64], after: &[f64]) -> Series {
        let mut s = Series::new();
        let change_day = first_day.pred_opt().unwrap();
        for (i, v) in before.iter().rev().enumerate() {
            s.insert(change_day - chrono::Duration::days(i as i64 + 1), *v);
        }
        for (i, v) in after.iter().enumerate() {
            s.insert(first_day + chrono::Duration::days(i as i64), *v);
        }
        s
    }

    fn measured(a: &Action, before: &[f64], after: &[f64]) -> Verdict {
        let first = d("2026-11-01");
        let metrics = BTreeMap::from([("pipeline_total".to_owned(), series(first, before, after))]);
        judge(&Facts {
            action: a,
            first_day: first,
            as_of: d("2026-11-14"),
            metrics: &metrics,
            applied_after: None,
            restore: None,
            already_escalated: false,
        })
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    const NOISY_BEFORE: [f64; 14] = [
        100., 104., 98., 101., 107., 99., 103., 102., 97., 105., 100., 106., 101., 99.,
    ];
    const NOISY_AFTER: [f64; 14] = [
        108., 112., 105., 110., 115., 107., 111., 109., 104., 113., 108., 114., 110., 106.,
    ];

    /// Reference: SciPy 1.17 `ttest_ind(after, before, equal_var=False)` gives df
    /// 25.791387881902907; the residuals' lag-1 autocorrelation is −0.457, clamped to 0, so the
    /// SE is Welch's 1.2108872935482513; with `t.ppf(0.975, df)` the 95% interval is
    /// [5.367148178165402, 10.347137536120321] and 1 − p is 0.9999992659404504.
    #[test]
    fn a_clear_rise_is_successful_and_matches_scipy() {
        let v = measured(
            &action("increase", 5.0, json!([])),
            &NOISY_BEFORE,
            &NOISY_AFTER,
        );
        let Verdict::Measured { measured: m, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(m.outcome, Outcome::Successful);
        close(m.welch.mean_before, 101.57142857142857);
        close(m.welch.mean_after, 109.42857142857143);
        close(m.welch.se, 1.2108872935482513);
        close(m.welch.df, 25.791387881902907);
        close(m.rho, 0.0);
        close(m.ci_low, 5.367148178165402);
        close(m.ci_high, 10.347137536120321);
        close(m.confidence, 0.9999992659404504);
    }

    #[test]
    fn the_same_rise_is_failed_when_a_fall_was_expected() {
        let v = measured(
            &action("decrease", 5.0, json!([])),
            &NOISY_BEFORE,
            &NOISY_AFTER,
        );
        let Verdict::Measured { measured: m, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(m.outcome, Outcome::Failed);
    }

    const DRIFT_BEFORE: [f64; 14] = [
        100., 101., 103., 104., 104., 103., 101., 100., 99., 99., 101., 103., 104., 105.,
    ];
    const DRIFT_AFTER: [f64; 14] = [
        103., 104., 106., 107., 107., 105., 104., 102., 102., 103., 105., 107., 108., 108.,
    ];

    /// Reference (SciPy 1.17 and the formula of docs/watchdog.md): Welch SE 0.783964084654557,
    /// df 25.92540656059253, ρ 0.6691297208538588, inflated SE 1.7608093402589178, 95% interval
    /// [−0.47704519949755575, 6.762759485211833], 1 − p 0.9140143001283592. Plain Welch would
    /// call it significant (p 0.00046); the autocorrelation makes it inconclusive.
    #[test]
    fn autocorrelation_widens_the_interval_to_inconclusive() {
        let v = measured(
            &action("increase", 6.0, json!([])),
            &DRIFT_BEFORE,
            &DRIFT_AFTER,
        );
        let Verdict::Measured { measured: m, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(m.outcome, Outcome::Inconclusive);
        close(m.welch.se, 0.783964084654557);
        close(m.welch.df, 25.92540656059253);
        close(m.rho, 0.6691297208538588);
        close(m.se_inflated, 1.7608093402589178);
        close(m.ci_low, -0.47704519949755575);
        close(m.ci_high, 6.762759485211833);
        close(m.confidence, 0.9140143001283592);
    }

    /// (t.ppf(0.975, df) + t.ppf(0.8, df)) × inflated SE is 5.03% of the baseline.
    #[test]
    fn an_effect_below_what_the_window_detects_is_unmeasurable() {
        let v = measured(
            &action("increase", 3.0, json!([])),
            &DRIFT_BEFORE,
            &DRIFT_AFTER,
        );
        let Verdict::Unmeasurable { detectable_pct, .. } = v else {
            panic!("{v:?}")
        };
        close(detectable_pct.unwrap(), 5.029637789626919);
    }

    /// `days` days watched from 11-26: the tenant has data (of some metric) up to the last.
    fn cac_facts<'a>(a: &'a Action, metrics: &'a BTreeMap<String, Series>, days: i64) -> Facts<'a> {
        Facts {
            action: a,
            first_day: d("2026-11-26"),
            as_of: d("2026-11-26") + chrono::Duration::days(days - 1),
            metrics,
            applied_after: Some(&AFTER),
            restore: Some(&BEFORE),
            already_escalated: false,
        }
    }

    fn cac(values: &[Option<f64>]) -> BTreeMap<String, Series> {
        let mut s = Series::new();
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                s.insert(d("2026-11-26") + chrono::Duration::days(i as i64), *v);
            }
        }
        BTreeMap::from([("cac_blended".to_owned(), s)])
    }

    fn cac_action() -> Action {
        action(
            "increase",
            20.0,
            json!([{"metric_id": "cac_blended", "operator": ">", "threshold": 3500.0,
                    "consecutive_days": 3}]),
        )
    }

    #[test]
    fn three_failed_days_abort_with_the_exact_prior_value() {
        let a = cac_action();
        let m = cac(&[Some(3612.0), Some(3650.0), Some(3701.0)]);
        let v = judge(&cac_facts(&a, &m, 3));
        let Verdict::Abort {
            restore, current, ..
        } = &v
        else {
            panic!("{v:?}")
        };
        assert_eq!((current, restore), (&json!(621.41), &json!(517.85)));
        assert_eq!(
            sentence(&a, &v),
            "cac_blended was 3,612, 3,650 and 3,701 on 11-26..11-28, above 3,500 for 3 \
             consecutive days; reverting budget_daily 621.41 → 517.85."
        );
    }

    #[test]
    fn a_passed_day_resets_the_count() {
        let a = cac_action();
        let m = cac(&[
            Some(3600.),
            Some(3600.),
            Some(3400.),
            Some(3600.),
            Some(3600.),
        ]);
        assert_eq!(judge(&cac_facts(&a, &m, 5)).name(), "watching");
    }

    #[test]
    fn missing_days_escalate_and_never_revert() {
        let a = cac_action();
        // Failed, failed, two days missing, failed, failed: no three in a row, so no revert;
        // the gap escalates, once.
        let m = cac(&[
            Some(3600.),
            Some(3600.),
            None,
            None,
            Some(3600.),
            Some(3600.),
        ]);
        let mut f = cac_facts(&a, &m, 6);
        let v = judge(&f);
        assert_eq!(v.name(), "escalate", "{v:?}");
        assert!(
            sentence(&a, &v).contains("no value on 11-28, 11-29"),
            "{}",
            sentence(&a, &v)
        );
        f.already_escalated = true;
        assert_eq!(judge(&f).name(), "watching", "escalated once");
        // One missing day is not a gap worth a person.
        let m = cac(&[Some(3600.), None, Some(3000.)]);
        assert_eq!(judge(&cac_facts(&a, &m, 3)).name(), "watching");
        // Missing at the end (the metric stopped arriving) escalates too.
        let m = cac(&[Some(3000.)]);
        assert_eq!(judge(&cac_facts(&a, &m, 3)).name(), "escalate");
    }
}
