//! The decision engine: a pure function of input, catalog and clock. No I/O, no randomness.
//! Rules, thresholds and formulas are documented in `docs/kernel.md`.
//!
//! Order of work: index the input and the known lever state (`data`) → data-health findings
//! (`health`) → scores and the binding constraint (`diagnose`) → candidate plays (`plays`) and
//! reverts (`learning`) → known lever values (`known`) → guardrails (`guard::select`) → output →
//! `validate_output` + `guard::check`.

pub mod data;
mod days;
mod deviation_note;
pub mod diagnose;
pub mod experiment;
pub mod explain;
pub mod guard;
pub mod health;
pub mod known;
pub mod learning;
pub mod plays;
mod rhythm;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_support;
mod text;

use crate::contract::catalog::{Bound, Catalog};
use crate::contract::*;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

pub use explain::Trace;

/// Tenant tunables. `decide` uses `KernelParams::default()`; each default is documented in
/// docs/kernel.md, and `app::kernel_params` applies the ones `config` exposes.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelParams {
    /// A required or target metric whose newest value is more than this many days before the
    /// window end is stale (config `kernel.stale_after_days`).
    pub stale_after_days: i32,
    /// Missing days are material at or above this share of the window.
    pub missing_days_material_share: f64,
    /// Unattributed revenue above this share of the window's revenue is material.
    pub attribution_max_share: f64,
    /// Overspend beyond this fraction of budget_total is material.
    pub overspend_tolerance: f64,
    /// CAC, payback or margin beyond its target by more than this fraction trips the finance gate.
    pub finance_tolerance: f64,
    /// Pipeline coverage needed when win rate is unknown.
    pub default_needed_coverage: f64,
    /// Days of data at which the days factor of confidence reaches 1.
    pub full_confidence_days: f64,
    /// Score separation at which the separation factor of confidence reaches 1.
    pub clear_separation: f64,
    /// Confidence of a data_quality diagnosis (its findings are facts, not estimates).
    pub data_quality_confidence: f64,
    pub max_experiment_days: u32,
    pub abort_consecutive_days: u32,
    pub default_observation_window_days: u32,
}

impl Default for KernelParams {
    fn default() -> Self {
        Self {
            stale_after_days: 3,
            missing_days_material_share: 0.10,
            attribution_max_share: 0.20,
            overspend_tolerance: 0.02,
            finance_tolerance: 0.05,
            default_needed_coverage: 3.0,
            full_confidence_days: 28.0,
            clear_separation: 0.25,
            data_quality_confidence: 0.9,
            max_experiment_days: 60,
            abort_consecutive_days: 3,
            default_observation_window_days: 14,
        }
    }
}

/// `details.reason` of the error for a cycle whose guardrails leave no executable action: a
/// cycle with nothing to do, which the worker records as `skipped`, not as a failure.
pub const NO_EXECUTABLE_ACTION: &str = "no_executable_action";

/// The skip reason a decision error carries: `NO_EXECUTABLE_ACTION`, or None for a failure.
pub fn skip_reason(e: &KernelError) -> Option<&'static str> {
    let reason = e.details.as_ref().and_then(|d| d.get("reason"));
    (e.code == ErrorCode::InvalidInput
        && reason.and_then(|r| r.as_str()) == Some(NO_EXECUTABLE_ACTION))
    .then_some(NO_EXECUTABLE_ACTION)
}

/// Decides one cycle for a checked input (`contract::check_input`) and the known lever state
/// (`Levers::default()` when nothing is known).
pub fn decide(
    checked: &Checked,
    levers: &Levers,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> Result<KernelOutput, KernelError> {
    decide_with(
        checked,
        levers,
        catalog,
        now,
        cycle_id,
        &KernelParams::default(),
        None,
    )
}

/// `decide` plus the reasoning trace for `--explain`.
pub fn decide_explained(
    checked: &Checked,
    levers: &Levers,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> (Result<KernelOutput, KernelError>, Trace) {
    let mut trace = Trace::default();
    let r = decide_with(
        checked,
        levers,
        catalog,
        now,
        cycle_id,
        &KernelParams::default(),
        Some(&mut trace),
    );
    (r, trace)
}

/// The whole offline path: bytes in, one decision or one error out.
pub fn run(
    bytes: &[u8],
    levers: &Levers,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> Result<KernelOutput, KernelError> {
    decide(
        &parse_input(bytes, catalog, now)?,
        levers,
        catalog,
        now,
        cycle_id,
    )
}

/// `run` plus the trace (empty when the input is rejected before deciding).
pub fn run_explained(
    bytes: &[u8],
    levers: &Levers,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> (Result<KernelOutput, KernelError>, Trace) {
    match parse_input(bytes, catalog, now) {
        Ok(checked) => decide_explained(&checked, levers, catalog, now, cycle_id),
        Err(e) => {
            let trace = Trace {
                result: format!("input rejected: {e}"),
                ..Trace::default()
            };
            (Err(e), trace)
        }
    }
}

/// `decide` with explicit tunables, filling `trace` when given.
pub fn decide_with(
    checked: &Checked,
    levers: &Levers,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
    params: &KernelParams,
    trace: Option<&mut Trace>,
) -> Result<KernelOutput, KernelError> {
    let input = checked.input();
    let mut ix = data::Index::build(checked, levers, params);
    let findings = health::findings(&ix, catalog);
    let mut diag = diagnose::diagnose(&ix, catalog, &findings);
    deviation_note::annotate(&mut diag, checked, catalog);
    // On track: low-risk steps only, whatever the tenant's tolerance.
    if diag.healthy {
        ix.risk = data::Risk::of(RiskTolerance::Low);
    }
    // Thin data (principle 4): budget steps and treatment shares shrink with the volume
    // factor, to half at most (not while over the spend cap: the cuts the diagnosis names
    // are sized by the full step).
    if diag.volume < 1.0 && ix.cap_cuts().is_empty() {
        let f = diag.volume.max(0.5);
        ix.risk.step = data::round_to(ix.risk.step * f, 3);
        ix.risk.treatment_pct = (ix.risk.treatment_pct * f).round().max(1.0);
    }
    let ctx = plays::Ctx {
        ix: &ix,
        diag: &diag,
        catalog,
    };
    let results = learning::by_id(input);
    let mut formed_drops = Vec::new();
    let mut learning_notes = Vec::new();
    let mut cands = learning::reverts(&ctx, catalog, &results, &mut learning_notes);
    cands.extend(plays::candidates(&ctx, &findings, &mut formed_drops));
    let considered = cands.len() + formed_drops.len();
    let cands = learning::apply(&ix, &results, cands, &mut formed_drops);
    let cands = known::apply(&ix, cands, &mut formed_drops);
    let mut sel = guard::select(cands, &ix, catalog, diag.constraint, &findings, now);

    let result = if sel.kept.is_empty() {
        Err(no_action_error(
            input,
            &diag,
            considered,
            &formed_drops,
            &sel.dropped,
        ))
    } else {
        let out = build_output(
            input,
            catalog,
            now,
            cycle_id,
            &ix,
            &diag,
            &findings,
            // The trace reads the selection's plays and drops, not its actions.
            std::mem::take(&mut sel.kept),
        );
        verified(out, &ix, catalog, now)
    };

    if let Some(t) = trace {
        fill_trace(
            t,
            &ix,
            &diag,
            &findings,
            &learning_notes,
            &formed_drops,
            &sel,
            &result,
        );
    }
    result
}

/// The contract's output rules, then the independent guardrail check: a failure of either is
/// a kernel bug, so nothing is emitted.
fn verified(
    out: KernelOutput,
    ix: &data::Index,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<KernelOutput, KernelError> {
    validate_output(&out, ix.input, catalog, now)?;
    if let Err(v) = guard::check_with(&out, ix) {
        return Err(KernelError::internal(format!(
            "kernel produced an output that breaks {} guardrail(s); nothing was emitted",
            v.len()
        ))
        .with("guardrail_violations", json!(v)));
    }
    Ok(out)
}

fn no_action_error(
    input: &KernelInput,
    diag: &diagnose::Diagnosis,
    considered: usize,
    formed: &[(String, String)],
    dropped: &[(String, String)],
) -> KernelError {
    let mut violations: Vec<Violation> = formed
        .iter()
        .chain(dropped)
        .map(|(id, why)| Violation::new("guardrails", format!("{id}: {why}")))
        .collect();
    if considered == 0 {
        let levers: Vec<&str> = input
            .guardrails
            .allowed_levers
            .iter()
            .map(|l| l.as_str())
            .collect();
        violations.push(Violation::new(
            "guardrails.allowed_levers",
            format!(
                "no play for a {} constraint can use the levers [{}] with this data",
                diag.constraint,
                levers.join(", ")
            ),
        ));
    }
    let excluded: Vec<serde_json::Value> = formed
        .iter()
        .chain(dropped)
        .map(|(id, why)| json!({"action_id": id, "excluded_by": why}))
        .collect();
    KernelError::new(
        ErrorCode::InvalidInput,
        format!(
            "guardrails leave no executable action for the {} constraint ({} candidate(s) \
             considered)",
            diag.constraint, considered
        ),
    )
    .with("violations", json!(violations))
    .with("excluded", json!(excluded))
    .with("binding_constraint", json!(diag.constraint))
    .with("reason", json!(NO_EXECUTABLE_ACTION))
}

#[allow(clippy::too_many_arguments)]
fn build_output(
    input: &KernelInput,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
    ix: &data::Index,
    diag: &diagnose::Diagnosis,
    findings: &[health::Finding],
    mut actions: Vec<Action>,
) -> KernelOutput {
    for (i, a) in actions.iter_mut().enumerate() {
        a.priority = (i + 1) as u8;
    }
    let data_quality_actions = (diag.constraint == BindingConstraint::DataQuality).then(|| {
        findings
            .iter()
            .take(usize::from(u8::MAX))
            .enumerate()
            .map(|(i, f)| DataQualityAction {
                action_id: f.action_id(),
                priority: (i + 1) as u8,
                issue_type: f.kind.issue(),
                affected_metric: f.metric.clone(),
                description: f.description.clone(),
                recommended_fix: f.fix.clone(),
            })
            .collect()
    });

    let mut monitor: Vec<String> = vec![diag.priority_metric.clone()];
    let mut add = |m: &str| {
        if !monitor.iter().any(|x| x == m) {
            monitor.push(m.to_owned());
        }
    };
    for a in &actions {
        add(&a.target_metric);
        for c in &a.guardrails.abort_conditions {
            add(&c.metric_id);
        }
    }
    let window = actions
        .iter()
        .map(|a| a.observation_window_days)
        .max()
        .unwrap_or(ix.default_window);

    let mut expected_outcomes: Vec<ExpectedOutcome> = Vec::new();
    for (field, _) in input.targets.defined() {
        let Some(def) = catalog.target(field) else {
            continue;
        };
        if expected_outcomes.iter().any(|o| o.metric_id == def.metric) {
            continue;
        }
        let from_actions = actions
            .iter()
            .filter(|a| a.expected_impact.metric_id == def.metric)
            .max_by(|a, b| {
                a.expected_impact
                    .magnitude_pct
                    .total_cmp(&b.expected_impact.magnitude_pct)
            });
        let short = diag.target(&def.metric).is_some_and(|t| t.gap > 0.0);
        let (direction, magnitude_pct) = match from_actions {
            Some(a) => (
                match a.expected_impact.direction {
                    ImpactDirection::Increase => OutcomeDirection::Increase,
                    ImpactDirection::Decrease => OutcomeDirection::Decrease,
                },
                Some(a.expected_impact.magnitude_pct),
            ),
            None if short => (
                match def.bound {
                    Bound::AtLeast => OutcomeDirection::Increase,
                    Bound::AtMost => OutcomeDirection::Decrease,
                },
                None,
            ),
            None => (OutcomeDirection::Stabilize, None),
        };
        expected_outcomes.push(ExpectedOutcome {
            metric_id: def.metric.clone(),
            direction,
            magnitude_pct,
        });
    }

    KernelOutput {
        tenant_id: input.tenant_id.clone(),
        cycle_id: cycle_id.to_string(),
        executed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        version: Version::V1,
        cycle_summary: CycleSummary {
            binding_constraint: diag.constraint,
            priority_metric: diag.priority_metric.clone(),
            diagnosis: diag.text.clone(),
            confidence: diag.confidence,
        },
        actions,
        data_quality_actions,
        learning_plan: LearningPlan {
            metrics_to_monitor: monitor,
            observation_window_days: window,
            expected_outcomes,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn fill_trace(
    t: &mut Trace,
    ix: &data::Index,
    diag: &diagnose::Diagnosis,
    findings: &[health::Finding],
    learning_notes: &[(String, String)],
    formed: &[(String, String)],
    sel: &guard::Selection,
    result: &Result<KernelOutput, KernelError>,
) {
    for f in findings {
        t.findings.push(format!(
            "[{}] {} {}: {}",
            if f.material { "material" } else { "minor" },
            f.kind.issue(),
            f.metric,
            f.description
        ));
    }
    for r in &ix.rhythms {
        t.findings.push(format!("[no finding] rhythm: {r}"));
    }
    for (lens, score) in diag.scores {
        t.scores
            .push(format!("{lens}: {score:.3} (max of its parts)"));
        for p in diag.parts.iter().filter(|p| p.lens == lens) {
            t.scores.push(format!("  {:.3}  {}", p.value, diag.why(p)));
        }
    }
    for te in &diag.targets {
        let noise = ix
            .trend_stats(&te.metric)
            .map_or("n/a (under 3 points)".into(), |tr| {
                format!(
                    "noise band +-{} ({} of the level, robust SD of residuals), slope t = {:.1}{}",
                    text::num(tr.noise),
                    text::pct_1(tr.noise / tr.level.abs().max(1e-9)),
                    tr.t.min(999.0),
                    if tr.significant {
                        ""
                    } else {
                        ", not significant"
                    }
                )
            });
        t.scores.push(format!(
            "projection: {} {} now, {}/day -> {} in {} days vs target {}{}; {noise}",
            te.metric,
            text::num(te.current),
            text::num(te.per_day),
            text::num(te.projected),
            te.horizon,
            text::num(te.target),
            te.forecast().map(|f| format!(" ({f})")).unwrap_or_default()
        ));
    }
    if let Some(f) = &diag.funnel {
        t.scores.push(format!(
            "funnel: coverage {:.2}x vs needed {:.2}x{} -> bookings shortfall counts as {}",
            f.coverage,
            f.needed,
            f.win_rate
                .map(|w| format!(" (1 / win_rate {w})"))
                .unwrap_or_else(|| " (default, win rate unknown)".into()),
            f.bookings_lens
        ));
        let q = &f.quality;
        t.scores.push(format!(
            "pipeline quality: {} open opportunities, {} past expected close (left out){}; \
             coverage counts {:.3} of pipeline_total {}",
            ix.opps.count,
            text::pct(q.overdue_share),
            match (&q.whale, &ix.opps.largest) {
                (Some((id, share, p, w)), _) => format!(
                    ", whale {id} {} of the amount at win probability {p} counts at {}",
                    text::pct(*share),
                    text::pct(*w)
                ),
                (None, Some((id, a, _))) if ix.opps.amount > 0.0 => format!(
                    ", largest {id} {} of the amount (whale threshold {})",
                    text::pct(a / ix.opps.amount),
                    text::pct(data::WHALE_SHARE)
                ),
                _ => String::new(),
            },
            q.share,
            text::num(f.pipeline)
        ));
    }
    for (ch, c) in &ix.channel_cac {
        let max = ix.input.targets.cac_max;
        t.scores.push(format!(
            "channel cac: {ch} {} on {} vs cac_max {}{}",
            text::num(c.value),
            data::date_string(c.day),
            max.map_or("(none)".into(), text::num),
            if ix.channel_over_cac(ch).is_some() {
                ": over, no spend added there; its campaigns are cut candidates"
            } else {
                ""
            }
        ));
    }
    for c in ix.campaigns.iter().filter(|c| c.netted()) {
        t.scores.push(format!(
            "net revenue: {} net new-business {} vs gross {} (refunds and churn netted, \
             expansion and renewal left out)",
            c.id,
            text::num(c.revenue),
            text::num(c.gross)
        ));
    }
    t.scores.push(format!(
        "spend: estimated daily {:.2} over {} running campaign(s); headroom {}",
        ix.daily_total,
        ix.campaigns.iter().filter(|c| c.running).count(),
        ix.headroom
            .map_or("unlimited (no max_daily_spend)".into(), |h| format!(
                "{h:.2}"
            ))
    ));
    for c in ix
        .campaigns
        .iter()
        .filter(|c| c.status_running && !c.running)
    {
        t.scores.push(format!(
            "eligibility: {}'s status says {} but {}: not running (no spend counted, nothing scaled)",
            c.id,
            ix.campaign_by_id
                .get(c.id)
                .and_then(|&i| ix.input.campaigns.get(i))
                .map_or("", |r| r.status.as_str()),
            match c.ended {
                Some(e) => format!("its end_date {} is before the window end", data::date_string(e)),
                None => "it starts after the window end".into(),
            }
        ));
    }
    if let Some(g) = &diag.gate {
        t.decision.push(g.clone());
    }
    if diag.healthy {
        t.decision
            .push("healthy: every score is 0; demand (measured growth) by default".into());
    }
    t.decision.push(format!(
        "binding constraint: {}; priority metric: {}",
        diag.constraint, diag.priority_metric
    ));
    t.decision
        .push(format!("confidence: {}", diag.confidence_parts));
    t.decision.push(format!(
        "risk: {} (budget step {}%, MDE {}%, treatment {}%)",
        ix.risk.level,
        ix.risk.step * 100.0,
        ix.risk.mde * 100.0,
        ix.risk.treatment_pct
    ));
    for (id, n) in learning_notes {
        t.learning.push(format!("{id}: {n}"));
    }
    if let Ok(out) = result {
        for (a, play) in out.actions.iter().zip(&sel.plays) {
            let c = &a.proposed_change;
            t.candidates.push(format!(
                "kept #{} {} ({play}): {} {} -> {}",
                a.priority, a.action_id, c.field, c.current_value, c.new_value
            ));
        }
    }
    for (id, why) in formed.iter().chain(&sel.dropped) {
        t.candidates.push(format!("dropped {id}: {why}"));
    }
    t.result = match result {
        Ok(out) => format!(
            "{} action(s), {} data-quality action(s)",
            out.actions.len(),
            out.data_quality_actions.as_ref().map_or(0, Vec::len)
        ),
        Err(e) => format!("{}: {}", e.code, e.message),
    };
}
