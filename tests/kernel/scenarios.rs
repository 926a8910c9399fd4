//! One test per situation of issue 3: each asserts the binding constraint, the lens of the
//! priority metric, and the guardrail properties of that situation. The words and numbers of
//! each answer are pinned byte for byte by the snapshots, not here.

use crate::support::*;
use revenue_os::contract::catalog::Lens;
use revenue_os::contract::*;
use revenue_os::kernel;

fn lens(metric: &str) -> Lens {
    catalog().metric(metric).expect("dictionary metric").lens
}

fn run(name: &str) -> (KernelInput, KernelOutput) {
    let checked = scenario(name);
    let out = decide(&checked).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_sound(&out, &checked);
    assert_deterministic(&checked);
    (checked.into_input(), out)
}

fn ids(out: &KernelOutput) -> Vec<&str> {
    out.actions.iter().map(|a| a.action_id.as_str()).collect()
}

fn adds_spend(out: &KernelOutput) -> bool {
    out.actions.iter().any(|a| {
        a.kind == ActionType::Scale || a.guardrails.max_additional_spend.is_some_and(|m| m > 0.0)
    })
}

#[test]
fn demand_bound() {
    let (_, out) = run("demand_bound");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::Demand);
    assert_eq!(s.priority_metric, "pipeline_total");
    assert_eq!(lens(&s.priority_metric), Lens::Demand);
    assert!((3..=7).contains(&out.actions.len()), "{:?}", ids(&out));
    // The best revenue-per-spend campaign with budget left is scaled first, by the medium step.
    let a = &out.actions[0];
    assert_eq!(a.action_id, "campaigns.scale.cmp_002.budget_daily");
    let (cur, new) = (
        a.proposed_change.current_value.as_f64().unwrap(),
        a.proposed_change.new_value.as_f64().unwrap(),
    );
    assert!(new > cur && new <= cur * 1.2 + 0.01);
    // cmp_007 spent with nothing attributed.
    assert!(ids(&out).contains(&"campaigns.pause.cmp_007.status"));
    assert!(out.data_quality_actions.is_none());
}

#[test]
fn conversion_bound() {
    let (_, out) = run("conversion_bound");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::Conversion);
    assert_eq!(s.priority_metric, "win_rate");
    assert_eq!(lens(&s.priority_metric), Lens::Conversion);
    assert!(out.actions.iter().all(|a| a.kind != ActionType::Scale));
    assert!(!adds_spend(&out));
    assert!(out.actions.len() >= 3, "{:?}", ids(&out));
    assert_eq!(out.actions[0].owner_subsystem, Subsystem::Crm);
}

/// The newest undimensioned value of a metric in the input.
fn latest(input: &KernelInput, metric: &str) -> f64 {
    input
        .metrics
        .iter()
        .filter(|m| m.metric_id == metric && m.dimension.is_none())
        .max_by(|a, b| a.date.cmp(&b.date))
        .map(|m| m.value)
        .unwrap()
}

#[test]
fn economics_breach_beats_a_demand_shortfall() {
    let (input, out) = run("economics_breach");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::Economics);
    assert_eq!(s.priority_metric, "cac_blended");
    assert_eq!(lens(&s.priority_metric), Lens::Economics);
    // Demand is also short, but CAC is beyond the finance gate's 5% tolerance.
    let t = &input.targets;
    assert!(latest(&input, "pipeline_total") < t.pipeline_total.unwrap());
    assert!(latest(&input, "cac_blended") > t.cac_max.unwrap() * 1.05);
    assert!(!adds_spend(&out));
    assert!(out.actions.iter().all(|a| a.kind != ActionType::Scale));
    assert!(out.actions.len() >= 3);
}

#[test]
fn margin_below_floor() {
    let (_, out) = run("margin_floor");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::Economics);
    assert_eq!(s.priority_metric, "gross_margin");
    assert_eq!(lens(&s.priority_metric), Lens::Economics);
    assert!(!adds_spend(&out));
    // A margin problem is a price problem first.
    assert_eq!(out.actions[0].owner_subsystem, Subsystem::Pricing);
}

#[test]
fn stale_data() {
    let (_, out) = run("stale_data");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::DataQuality);
    assert_eq!(lens(&s.priority_metric), Lens::DataHealth);
    let dq = out.data_quality_actions.as_ref().unwrap();
    let stale = dq
        .iter()
        .find(|d| d.issue_type == DataIssueType::StaleData)
        .unwrap();
    assert_eq!(stale.affected_metric, "pipeline_total");
    assert!(!stale.recommended_fix.is_empty());
    assert!(!adds_spend(&out));
    assert!(!out.actions.is_empty());
}

#[test]
fn three_quarters_of_revenue_unattributed() {
    let (_, out) = run("unattributed_75");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::DataQuality);
    assert_eq!(s.priority_metric, "missing_attribution_pct");
    assert_eq!(lens(&s.priority_metric), Lens::DataHealth);
    let dq = out.data_quality_actions.as_ref().unwrap();
    assert!(
        dq.iter()
            .any(|d| d.issue_type == DataIssueType::MissingAttribution)
    );
    assert!(!adds_spend(&out));
    // Nothing that reads attribution (pauses for "no attributed revenue", scaling by ROAS).
    assert!(
        out.actions
            .iter()
            .all(|a| !matches!(a.kind, ActionType::Pause | ActionType::Scale)),
        "{:?}",
        ids(&out)
    );
}

#[test]
fn only_the_pricing_lever() {
    let (_, out) = run("pricing_only");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Economics
    );
    assert_eq!(lens(&out.cycle_summary.priority_metric), Lens::Economics);
    assert!(
        out.actions
            .iter()
            .all(|a| a.owner_subsystem == Subsystem::Pricing)
    );
    assert!(out.actions.iter().all(|a| a.kind != ActionType::Scale));
}

#[test]
fn experiment_and_scale_blocked() {
    let (_, out) = run("blocked_experiment_scale");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Demand
    );
    assert_eq!(lens(&out.cycle_summary.priority_metric), Lens::Demand);
    assert!(
        out.actions
            .iter()
            .all(|a| !matches!(a.kind, ActionType::Experiment | ActionType::Scale))
    );
    assert!(out.actions.len() >= 3);
}

#[test]
fn ten_percent_exposure_cap() {
    let (input, out) = run("exposure_cap_10");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Demand
    );
    assert_eq!(lens(&out.cycle_summary.priority_metric), Lens::Demand);
    let exps: Vec<&Action> = out
        .actions
        .iter()
        .filter(|a| a.kind == ActionType::Experiment)
        .collect();
    assert!(!exps.is_empty(), "{:?}", ids(&out));
    let min = input.config.as_ref().unwrap().min_sample_size.unwrap() as u64;
    for a in exps {
        let e = a.experiment.as_ref().unwrap();
        assert!(e.treatment_group_pct <= 10.0);
        assert!(a.guardrails.max_exposure_percent.unwrap() <= 10.0);
        assert!(e.control_group_pct + e.treatment_group_pct <= 100.0);
        assert!(e.min_sample_size >= min);
        // Power analysis at the tenant's baseline with the medium MDE (20%).
        let p = e.success_threshold / 1.2;
        let n = kernel::experiment::sample_size_per_arm(p, e.success_threshold).unwrap();
        assert!(e.min_sample_size + 5 >= n, "{} vs {n}", e.min_sample_size);
        assert!(a.observation_window_days <= 60);
    }
}

#[test]
fn small_spend_cap_trims_the_increase() {
    let (input, out) = run("small_spend_cap");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Demand
    );
    let cap = input.guardrails.max_daily_spend.unwrap();
    // Estimated daily spend is 2,241.07: 58.93 of headroom under the 2,300 cap.
    let added: f64 = out
        .actions
        .iter()
        .filter_map(|a| a.guardrails.max_additional_spend)
        .sum();
    assert!(added > 0.0 && added <= 58.93 + 1e-9, "{added}");
    for a in &out.actions {
        if a.proposed_change.field == "budget_daily" {
            assert!(a.proposed_change.new_value.as_f64().unwrap() <= cap);
        }
    }
    assert_eq!(
        out.actions
            .iter()
            .filter(|a| a.kind == ActionType::Scale)
            .count(),
        1
    );
}

#[test]
fn no_spend_headroom_means_no_spend_increase() {
    let (_, out) = run("no_spend_headroom");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Demand
    );
    assert!(!adds_spend(&out), "{:?}", ids(&out));
    assert!(out.actions.len() >= 3);
}

#[test]
fn failed_earlier_action_is_reverted_and_not_repeated() {
    let (_, out) = run("failed_action");
    assert_eq!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::Demand
    );
    let a = &out.actions[0];
    assert_eq!(a.action_id, "campaigns.revert.cmp_002.budget_daily");
    assert_eq!(a.kind, ActionType::Revert);
    assert!(!ids(&out).contains(&"campaigns.scale.cmp_002.budget_daily"));
}

#[test]
fn learning_confirmed_unconfirmed_and_inconclusive() {
    let (_, out) = run("learning_mixed");
    // Confirmed success (0.9): the next step is eligible and ranked first.
    assert_eq!(
        out.actions[0].action_id,
        "campaigns.scale.cmp_006.budget_daily"
    );
    // Success at 0.6 is not a win yet; an inconclusive pause is left alone.
    assert!(!ids(&out).contains(&"campaigns.scale.cmp_002.budget_daily"));
    assert!(!ids(&out).contains(&"campaigns.pause.cmp_007.status"));
}

#[test]
fn healthy_tenant() {
    let (_, out) = run("healthy");
    let s = &out.cycle_summary;
    assert_eq!(s.binding_constraint, BindingConstraint::Demand);
    assert_eq!(lens(&s.priority_metric), Lens::Demand);
    assert!(out.data_quality_actions.is_none());
    // On track: low-risk steps only (the 10% step), low confidence, nothing floor-wide.
    assert!(s.diagnosis.starts_with("On track:"), "{}", s.diagnosis);
    assert!(s.confidence <= 0.4);
    assert!(!out.actions.is_empty());
    for a in &out.actions {
        assert!(!matches!(
            a.owner_subsystem,
            Subsystem::Crm | Subsystem::Routing
        ));
        if let (Some(c), Some(n)) = (
            a.proposed_change.current_value.as_f64(),
            a.proposed_change.new_value.as_f64(),
        ) {
            assert!((n - c).abs() <= c * 0.1 + 0.01, "{}", a.action_id);
        }
    }
    // Nothing is short: every target metric is expected to stabilize or improve.
    assert_eq!(out.learning_plan.expected_outcomes.len(), 5);
}

#[test]
fn guardrails_that_exclude_everything_give_invalid_input() {
    // A demand-bound tenant that only allows pricing: no demand play can run.
    let mut input = scenario("demand_bound").into_input();
    input.guardrails.allowed_levers = vec![Lever::Pricing];
    let err = decide(&check(input)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    let details = err.details.as_ref().unwrap();
    let excluded = details["excluded"].as_array().unwrap();
    assert!(excluded.iter().any(|e| {
        e["excluded_by"]
            .as_str()
            .unwrap()
            .contains("allowed_levers")
    }));
    assert!(!err.violations().is_empty());
}

#[test]
fn guard_check_catches_a_tampered_output() {
    let input = scenario("demand_bound");
    let mut out = decide(&input).unwrap();
    let a = &mut out.actions[0];
    assert_eq!(a.kind, ActionType::Scale);
    let cur = a.proposed_change.current_value.as_f64().unwrap();
    a.proposed_change.new_value = serde_json::json!(cur * 1.5);
    let v = kernel::guard::check(&out, &input).unwrap_err();
    assert!(v.iter().any(|v| v.problem.contains("step")), "{v:?}");

    let mut out = decide(&input).unwrap();
    out.actions[0].guardrails.abort_conditions.clear();
    assert!(kernel::guard::check(&out, &input).is_err());

    let mut blocked = input.input().clone();
    blocked.guardrails.blocked_actions = Some(vec!["pause".into()]);
    let out = decide(&input).unwrap();
    assert!(kernel::guard::check(&out, &check(blocked)).is_err());
}

#[test]
fn explain_trace_lists_every_finding_and_every_candidate() {
    let input = scenario("stale_data");
    let (res, trace) =
        kernel::decide_explained(&input, &Levers::default(), catalog(), now(), cycle(1));
    let out = res.unwrap();
    // One kept line per emitted action, in priority order, then the dropped ones.
    let kept: Vec<String> = out
        .actions
        .iter()
        .map(|a| format!("kept #{} {} (", a.priority, a.action_id))
        .collect();
    assert!(
        trace.candidates.len() > kept.len(),
        "spend plays were dropped"
    );
    for (line, want) in trace.candidates.iter().zip(&kept) {
        assert!(line.starts_with(want.as_str()), "{line}");
    }
    assert!(
        trace.candidates[kept.len()..]
            .iter()
            .all(|l| l.starts_with("dropped "))
    );
    let dq = out.data_quality_actions.as_ref().unwrap();
    assert_eq!(trace.findings.len(), dq.len());
}

#[test]
fn stale_after_days_is_a_tunable() {
    let input = scenario("stale_data");
    let params = kernel::KernelParams {
        stale_after_days: 7,
        ..Default::default()
    };
    let out = kernel::decide_with(
        &input,
        &Levers::default(),
        catalog(),
        now(),
        cycle(1),
        &params,
        None,
    )
    .unwrap();
    // Six days old is not stale under a seven-day rule.
    assert_ne!(
        out.cycle_summary.binding_constraint,
        BindingConstraint::DataQuality
    );
}

#[test]
fn inconclusive_experiment_is_rerun_with_a_larger_sample() {
    let base = scenario("exposure_cap_10");
    let first = decide(&base).unwrap();
    let exp = first
        .actions
        .iter()
        .find(|a| a.action_id == "crm.experiment.sequence_delay_days")
        .expect("the sequence experiment fits at this volume");
    let n = exp.experiment.as_ref().unwrap().min_sample_size;

    let mut input = base.input().clone();
    input.recent_action_results = Some(vec![ActionResult {
        action_id: exp.action_id.clone(),
        target_metric: "meeting_book_rate".into(),
        baseline_value: 0.12,
        observed_value: 0.125,
        delta: 0.005,
        confidence: 0.4,
        outcome: Outcome::Inconclusive,
    }]);
    let input = check(input);
    let out = decide(&input).unwrap();
    assert_sound(&out, &input);
    let rerun = out
        .actions
        .iter()
        .find(|a| a.action_id == exp.action_id)
        .unwrap();
    assert_eq!(rerun.experiment.as_ref().unwrap().min_sample_size, 2 * n);
    assert!(rerun.observation_window_days <= 60);
}

/// A lever value an executor reported applying (issue 10's lever state).
fn known(
    subsystem: Subsystem,
    entity: Option<&str>,
    field: &str,
    value: serde_json::Value,
    before: serde_json::Value,
    action_id: &str,
) -> KnownLever {
    KnownLever {
        subsystem,
        entity_id: entity.map(Into::into),
        field: field.into(),
        value,
        before: Some(before),
        since: "2026-11-20T06:01:02Z".into(),
        cycle_id: cycle(9).to_string(),
        action_id: action_id.into(),
    }
}

fn decide_knowing(checked: &Checked, levers: &Levers) -> (KernelOutput, kernel::Trace) {
    let (res, trace) = kernel::decide_explained(checked, levers, catalog(), now(), cycle(1));
    let out = res.unwrap();
    assert_sound(&out, checked);
    (out, trace)
}

fn change_of<'a>(out: &'a KernelOutput, id: &str) -> Option<&'a ProposedChange> {
    out.actions
        .iter()
        .find(|a| a.action_id == id)
        .map(|a| &a.proposed_change)
}

const SLA: &str = "crm.config_change.follow_up_sla_hours";

/// The CRM executor applied the SLA change 24 h -> 5 h.
fn sla_set_to_5() -> Levers {
    let (five, was) = (serde_json::json!(5), serde_json::json!(24));
    Levers::new(vec![known(
        Subsystem::Crm,
        None,
        "follow_up_sla_hours",
        five,
        was,
        SLA,
    )])
}
const ROUND_ROBIN: &str = "routing.config_change.round_robin_enabled";

#[test]
fn known_lever_state_fills_current_values_and_drops_changes_that_change_nothing() {
    use serde_json::json;
    let checked = scenario("demand_bound");
    // Without lever state: the SLA goes null -> 5, round robin null -> true.
    let plain = decide(&checked).unwrap();
    assert_eq!(change_of(&plain, SLA).unwrap().current_value, json!(null));
    assert!(ids(&plain).contains(&ROUND_ROBIN));

    // The CRM executor reported setting the SLA to 24 h; round robin is already on.
    let levers = Levers::new(vec![
        known(
            Subsystem::Crm,
            None,
            "follow_up_sla_hours",
            json!(24),
            json!(48),
            SLA,
        ),
        known(
            Subsystem::Routing,
            None,
            "round_robin_enabled",
            json!(true),
            json!(false),
            ROUND_ROBIN,
        ),
    ]);
    let (out, trace) = decide_knowing(&checked, &levers);
    let sla = change_of(&out, SLA).unwrap();
    assert_eq!(
        (&sla.current_value, &sla.new_value),
        (&json!(24), &json!(5))
    );
    assert!(!ids(&out).contains(&ROUND_ROBIN), "{:?}", ids(&out));
    assert!(
        trace
            .candidates
            .iter()
            .any(|l| l.starts_with(&format!("dropped {ROUND_ROBIN}: known lever state"))),
        "{:?}",
        trace.candidates
    );
    // Campaign budgets still come from the input's campaigns.
    assert_eq!(out.actions[0], plain.actions[0]);

    // An SLA already at the proposed 5 h is not proposed again.
    let at_five = sla_set_to_5();
    let (out, _) = decide_knowing(&checked, &at_five);
    assert!(change_of(&out, SLA).is_none(), "{:?}", ids(&out));
}

#[test]
fn a_revert_names_the_exact_value_it_restores() {
    use serde_json::json;
    // The SLA change 24 -> 5 failed: the revert sets exactly 24 back, from 5.
    let mut input = scenario("demand_bound").into_input();
    input.recent_action_results = Some(vec![ActionResult {
        action_id: SLA.into(),
        target_metric: "speed_to_lead_hours".into(),
        baseline_value: 6.6,
        observed_value: 7.4,
        delta: 0.8,
        confidence: 0.85,
        outcome: Outcome::Failed,
    }]);
    let checked = check(input);
    let levers = sla_set_to_5();
    let (out, _) = decide_knowing(&checked, &levers);
    let revert = &out.actions[0];
    assert_eq!(revert.action_id, "crm.revert.follow_up_sla_hours");
    assert_eq!(
        (
            &revert.proposed_change.current_value,
            &revert.proposed_change.new_value
        ),
        (&json!(5), &json!(24))
    );
    assert!(
        revert
            .notes_for_humans
            .contains("restores follow_up_sla_hours to 24")
    );
    assert!(change_of(&out, SLA).is_none());

    // A failed budget raise 500 -> 600: back to exactly 500, not to the spend estimate.
    let checked = scenario("failed_action");
    let id = "campaigns.scale.cmp_002.budget_daily";
    let levers = Levers::new(vec![known(
        Subsystem::Campaigns,
        Some("cmp_002"),
        "budget_daily",
        json!(600.0),
        json!(500.0),
        id,
    )]);
    let (out, _) = decide_knowing(&checked, &levers);
    let c = change_of(&out, "campaigns.revert.cmp_002.budget_daily").unwrap();
    assert_eq!(
        (&c.current_value, &c.new_value),
        (&json!(600.0), &json!(500.0))
    );
}
