//! Guardrails: which candidates may be emitted (`select`), and an independent check of every
//! output against the input's guardrails (`check`), run before anything leaves the kernel.

use super::data::{Index, Risk, floor_cents};
use super::health::Finding;
use super::health::Kind;
use super::learning;
use super::plays::{Candidate, Play};
use crate::contract::catalog::{Catalog, FieldContext};
use crate::contract::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;

/// Tolerance for comparing money and percentages that were rounded to cents.
const EPS: f64 = 1e-6;

/// The lever an action pulls:
/// campaigns subsystem on a channel -> `channels`; other campaigns actions -> `campaigns`;
/// content on a campaign -> `campaigns`, other content -> `sequences`; crm and routing ->
/// `sequences`; pricing -> `pricing`.
pub fn lever(a: &Action) -> Lever {
    let entity = a.target_entity.as_ref().map(|e| e.kind);
    match a.owner_subsystem {
        Subsystem::Campaigns if entity == Some(EntityType::Channel) => Lever::Channels,
        Subsystem::Campaigns => Lever::Campaigns,
        Subsystem::Content if entity == Some(EntityType::Campaign) => Lever::Campaigns,
        Subsystem::Content | Subsystem::Crm | Subsystem::Routing => Lever::Sequences,
        Subsystem::Pricing => Lever::Pricing,
    }
}

/// Whether an action changes spend (and so must carry an abort condition).
fn touches_spend(a: &Action) -> bool {
    a.owner_subsystem == Subsystem::Campaigns
        && matches!(
            a.proposed_change.field.as_str(),
            "budget_daily" | "budget_total" | "status"
        )
}

/// Daily spend an emitted action adds, judged from the action and the input alone.
fn added_spend(a: &Action, ix: &Index) -> f64 {
    let entity = a.target_entity.as_ref().map(|e| e.id.as_str());
    match (a.proposed_change.field.as_str(), entity) {
        ("budget_daily", Some(e)) => {
            let cur = ix.entity_daily(e).map(floor_cents).unwrap_or(0.0);
            a.proposed_change
                .new_value
                .as_f64()
                .map_or(0.0, |n| (n - cur).max(0.0))
        }
        ("status", Some(e)) if a.proposed_change.new_value == json!("running") => ix
            .campaign(e)
            .filter(|c| !c.running || a.kind == ActionType::Revert)
            .map_or(0.0, |c| c.daily.max(0.0)),
        _ => a.guardrails.max_additional_spend.unwrap_or(0.0).max(0.0),
    }
}

/// What one action changes: (subsystem, entity, field). A campaign's spend fields (status and
/// budgets) are one lever, so a campaign is not paused and re-budgeted in the same cycle.
fn changes(a: &Action) -> (Subsystem, Option<&str>, &str) {
    let field = if touches_spend(a) {
        "spend"
    } else {
        a.proposed_change.field.as_str()
    };
    (
        a.owner_subsystem,
        a.target_entity.as_ref().map(|e| e.id.as_str()),
        field,
    )
}

pub struct Selection {
    pub kept: Vec<Action>,
    /// The play behind each kept action (same order), for the trace.
    pub plays: Vec<Play>,
    /// (action id, guardrail or reason).
    pub dropped: Vec<(String, String)>,
}

/// Filters ranked candidates through every guardrail, allots spend headroom in rank order, and
/// keeps at most `MAX_ACTIONS`.
pub fn select(
    mut cands: Vec<Candidate>,
    ix: &Index,
    catalog: &Catalog,
    constraint: BindingConstraint,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> Selection {
    cands.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then_with(|| b.evidence.total_cmp(&a.evidence))
            .then_with(|| a.action.action_id.cmp(&b.action.action_id))
    });
    let g = &ix.input.guardrails;
    let attribution_broken = findings
        .iter()
        .any(|f| f.material && f.kind == Kind::Attribution);
    let mut headroom = ix.headroom;
    let mut kept: Vec<Action> = Vec::with_capacity(MAX_ACTIONS);
    let mut plays = Vec::new();
    let mut dropped = Vec::new();
    let cap_exposure = g.max_experiment_exposure_pct;
    for mut k in cands {
        let a = &mut k.action;
        let id = a.action_id.clone();
        let why: Option<String> = (|| {
            if g.is_blocked(a.kind) {
                return Some(format!("blocked_actions: type '{}' is blocked", a.kind));
            }
            let l = lever(a);
            if !g.allowed_levers.contains(&l) {
                return Some(format!("allowed_levers: needs the '{l}' lever"));
            }
            if !catalog.accepts(a.owner_subsystem, a.kind) {
                return Some(format!(
                    "executor map: {} does not run '{}'",
                    a.owner_subsystem, a.kind
                ));
            }
            if a.kind == ActionType::Scale && constraint != BindingConstraint::Demand {
                return Some(format!("no spend scaling while {constraint} binds"));
            }
            if constraint == BindingConstraint::DataQuality {
                if k.adds_spend > 0.0 {
                    return Some(
                        "data_quality: nothing adds spend while data is unreliable".into(),
                    );
                }
                if k.uses_attribution && attribution_broken {
                    return Some(
                        "data_quality: play relies on attribution, which is missing".into(),
                    );
                }
            }
            if k.adds_spend > 0.0
                && let Some(g) = findings.iter().find(|f| f.kind == Kind::Glitch)
            {
                return Some(format!(
                    "data health: suspected sync glitch in {}; nothing adds spend while it stands",
                    g.metric
                ));
            }
            if k.adds_spend > 0.0 {
                if let Some(room) = headroom {
                    let room = floor_cents(room);
                    if room < 1.0 {
                        return Some(format!(
                            "max_daily_spend: no headroom (estimated daily spend {:.2} of cap {:.2})",
                            ix.daily_total,
                            g.max_daily_spend.unwrap_or(0.0)
                        ));
                    }
                    // A revert restores one exact value, so it is never trimmed.
                    if room < k.adds_spend
                        && (a.proposed_change.field != "budget_daily"
                            || a.kind == ActionType::Revert)
                    {
                        return Some(format!(
                            "max_daily_spend: adds {:.2}/day, above the headroom {room:.2}",
                            k.adds_spend
                        ));
                    }
                    if room < k.adds_spend {
                        let cur = a.proposed_change.current_value.as_f64().unwrap_or(0.0);
                        let new = floor_cents(cur + room);
                        a.proposed_change.new_value = json!(new);
                        k.adds_spend = floor_cents(new - cur);
                        a.notes_for_humans.push_str(&format!(
                            " The increase is trimmed to {:.2}/day, the headroom under max_daily_spend.",
                            k.adds_spend
                        ));
                    }
                }
                a.guardrails.max_additional_spend = Some(floor_cents(k.adds_spend));
            }
            if a.kind == ActionType::Experiment {
                let t = a.experiment.as_ref().map_or(0.0, |e| e.treatment_group_pct);
                if cap_exposure.is_some_and(|c| t > c + EPS) || t <= 0.0 {
                    return Some("max_experiment_exposure_pct: treatment above the cap".into());
                }
            }
            if a.guardrails.abort_conditions.is_empty() {
                return Some("no abort condition on a metric the tenant reports".into());
            }
            let Some(spec) = catalog.field(a.owner_subsystem, &a.proposed_change.field) else {
                return Some(format!(
                    "executor map: {} does not accept '{}'",
                    a.owner_subsystem, a.proposed_change.field
                ));
            };
            let ctx = FieldContext {
                max_daily_spend: g.max_daily_spend,
                entity_budget_spent: a
                    .target_entity
                    .as_ref()
                    .and_then(|e| ix.input.campaigns.iter().find(|c| c.id == e.id))
                    .map(|c| c.budget_spent),
                today: Some(now.date_naive()),
            };
            if let Err(p) = spec.check(&a.proposed_change.new_value, &ctx) {
                return Some(format!("executor map: value rejected ({p})"));
            }
            if super::known::same(
                &a.proposed_change.new_value,
                &a.proposed_change.current_value,
            ) {
                return Some(format!(
                    "changes nothing: {} is already {}",
                    a.proposed_change.field, a.proposed_change.current_value
                ));
            }
            // At most MAX_ACTIONS kept: looked through, not indexed.
            if kept.iter().any(|k| k.action_id == id) {
                return Some("duplicate of an earlier candidate".into());
            }
            let (s, e, f) = changes(a);
            if let Some(first) = kept
                .iter()
                .find(|k| changes(k) == (s, e, f))
                .map(|k| &k.action_id)
            {
                return Some(format!(
                    "one action per entity and field: {first} already changes {}{}",
                    e.map(|e| format!("{e} ")).unwrap_or_default(),
                    if f == "spend" {
                        "spend (status and budgets)"
                    } else {
                        f
                    }
                ));
            }
            if kept.len() >= MAX_ACTIONS {
                return Some(format!("cap of {MAX_ACTIONS} actions"));
            }
            None
        })();
        match why {
            Some(w) => dropped.push((id, w)),
            None => {
                if k.adds_spend > 0.0
                    && let Some(h) = headroom.as_mut()
                {
                    *h -= k.adds_spend;
                }
                plays.push(k.play);
                kept.push(k.action);
            }
        }
    }
    Selection {
        kept,
        plays,
        dropped,
    }
}

const MAX_ACTIONS: usize = 7;

/// Independent check of an output against the input's guardrails. Every kernel output passes
/// through it; a violation is a kernel bug and becomes `INTERNAL_ERROR`.
pub fn check(out: &KernelOutput, checked: &Checked) -> Result<(), Vec<Violation>> {
    let params = super::KernelParams::default();
    check_with(
        out,
        &Index::build(checked, &super::data::NO_LEVERS, &params),
    )
}

/// `check` over an index already built from the input (the kernel reuses its own).
pub fn check_with(out: &KernelOutput, ix: &Index) -> Result<(), Vec<Violation>> {
    let input = ix.input;
    let params = ix.params;
    let g = &input.guardrails;
    let risk: Risk = ix.risk;
    let failed: BTreeSet<&str> = learning::by_id(input)
        .into_iter()
        .filter(|(_, r)| r.outcome == Outcome::Failed)
        .map(|(id, _)| id)
        .collect();
    let data_quality = out.cycle_summary.binding_constraint == BindingConstraint::DataQuality;
    let mut v = Vec::new();
    let mut added_total = 0.0;
    let mut touched = BTreeSet::new();
    for (i, a) in out.actions.iter().enumerate() {
        let mut push = |m: String| v.push(Violation::new(format!("actions[{i}]"), m));
        if !touched.insert(changes(a)) {
            push("a second action on the same entity and field".into());
        }
        if super::known::same(
            &a.proposed_change.new_value,
            &a.proposed_change.current_value,
        ) {
            push("new_value equals current_value".into());
        }
        if g.is_blocked(a.kind) {
            push(format!("type '{}' is in blocked_actions", a.kind));
        }
        let l = lever(a);
        if !g.allowed_levers.contains(&l) {
            push(format!("lever '{l}' is not allowed"));
        }
        if failed.contains(a.action_id.as_str()) {
            push("re-proposes a change that failed recently".into());
        }
        let added = added_spend(a, ix);
        if added > EPS {
            added_total += added;
            if data_quality {
                push("adds spend while data_quality binds".into());
            }
            if a.guardrails
                .max_additional_spend
                .is_none_or(|m| m + 0.01 < added)
            {
                push(format!(
                    "adds {added:.2}/day beyond its max_additional_spend"
                ));
            }
        }
        if let Some(m) = a.guardrails.max_additional_spend
            && let Some(h) = ix.headroom
            && m > h + EPS
        {
            push(format!(
                "max_additional_spend {m} exceeds the headroom {h:.2}"
            ));
        }
        if let Some(l) = super::known::lever_of(ix, a)
            && super::known::same(&a.proposed_change.new_value, &l.value)
        {
            push(format!(
                "sets {} to {}, the value it already holds",
                a.proposed_change.field, l.value
            ));
        }
        if a.kind == ActionType::Scale
            && out.cycle_summary.binding_constraint != BindingConstraint::Demand
        {
            push("scales while demand does not bind".into());
        }
        // Budget steps never exceed the risk tolerance's step (a revert restores a prior value).
        if a.proposed_change.field == "budget_daily"
            && a.kind != ActionType::Revert
            && let (Some(cur), Some(new)) = (
                a.proposed_change.current_value.as_f64(),
                a.proposed_change.new_value.as_f64(),
            )
            && cur > 0.0
            && (new - cur).abs() > cur * risk.step + 0.01
        {
            push(format!(
                "budget step {cur} -> {new} exceeds {}%",
                risk.step * 100.0
            ));
        }
        if let Some(cap) = g.max_experiment_exposure_pct {
            if a.guardrails
                .max_exposure_percent
                .is_some_and(|x| x > cap + EPS)
            {
                push(format!("max_exposure_percent above the cap {cap}"));
            }
            if a.experiment
                .as_ref()
                .is_some_and(|e| e.treatment_group_pct > cap + EPS)
            {
                push(format!("treatment_group_pct above the cap {cap}"));
            }
        }
        if let Some(e) = &a.experiment {
            if e.control_group_pct + e.treatment_group_pct > 100.0 + EPS {
                push("control + treatment exceed 100%".into());
            }
            if e.min_sample_size < ix.min_sample_size {
                push("min_sample_size below config.min_sample_size".into());
            }
            if a.observation_window_days > params.max_experiment_days.max(ix.default_window) {
                push("experiment window beyond the day limit".into());
            }
        }
        let needs_abort =
            matches!(a.kind, ActionType::Scale | ActionType::Experiment) || touches_spend(a);
        if needs_abort && a.guardrails.abort_conditions.is_empty() {
            push("no abort condition".into());
        }
        for c in &a.guardrails.abort_conditions {
            if c.consecutive_days < 2 {
                push(format!(
                    "abort on {} needs >= 2 consecutive days",
                    c.metric_id
                ));
            }
            // Only pipeline_velocity may go below 0: a "below 0" bound elsewhere never fires.
            if matches!(c.operator, Operator::Lt | Operator::Le)
                && c.threshold <= 0.0
                && c.metric_id != "pipeline_velocity"
            {
                push(format!(
                    "abort on {} {} {} can never fire",
                    c.metric_id, c.operator, c.threshold
                ));
            }
            if !ix.reported.contains(c.metric_id.as_str()) {
                push(format!(
                    "abort metric {} is not reported by the tenant",
                    c.metric_id
                ));
            }
        }
    }
    if let Some(h) = ix.headroom
        && added_total > h + 0.01
    {
        v.push(Violation::new(
            "actions",
            format!("together add {added_total:.2}/day, above the headroom {h:.2}"),
        ));
    }
    if out.actions.is_empty() {
        v.push(Violation::new("actions", "no actions"));
    }
    if v.is_empty() { Ok(()) } else { Err(v) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::{Play, Proposal};
    use crate::kernel::test_support::*;

    /// A running campaign at 100/day with revenue: the demand plays scale it.
    fn tenant() -> Tenant {
        Tenant::short()
            .campaign("c1", "running", 10_000.0, 3_000.0)
            .revenue(20_000.0, Some("c1"), Some("email"))
    }

    fn cand(kind: ActionType, id: &str, new: f64, adds: f64, rank: u8) -> Candidate {
        let action = Proposal {
            subsystem: Subsystem::Campaigns,
            kind,
            entity: Some((EntityType::Campaign, id)),
            field: "budget_daily",
            current: json!(100.0),
            new: json!(new),
            metric: "pipeline_total",
            direction: ImpactDirection::Increase,
            magnitude: 5.0,
            confidence: 0.5,
            window: 14,
            aborts: vec![Some(AbortCondition {
                metric_id: "pipeline_total".into(),
                operator: Operator::Lt,
                threshold: 1.0,
                consecutive_days: 3,
            })],
            notes: String::new(),
        }
        .into_action();
        let mut k = Candidate::new(action, (Play::ScaleBest, rank), 1.0);
        k.adds_spend = adds;
        k
    }

    fn run(t: Tenant, constraint: BindingConstraint, cands: Vec<Candidate>) -> Selection {
        let c = t.checked();
        select(cands, &index(&c), &CATALOG, constraint, &[], now())
    }

    fn dropped(s: &Selection) -> Vec<&str> {
        s.dropped.iter().map(|d| d.1.as_str()).collect()
    }

    #[test]
    fn blocked_types_and_disallowed_levers_are_dropped_first() {
        let t = tenant().guardrails(|g| g.blocked_actions = Some(vec!["scale".into()]));
        let s = run(
            t,
            BindingConstraint::Demand,
            vec![cand(ActionType::Scale, "c1", 120.0, 20.0, 1)],
        );
        assert_eq!(dropped(&s), ["blocked_actions: type 'scale' is blocked"]);
        let t = tenant().guardrails(|g| g.allowed_levers = vec![Lever::Pricing]);
        let s = run(
            t,
            BindingConstraint::Demand,
            vec![cand(ActionType::Scale, "c1", 120.0, 20.0, 1)],
        );
        assert_eq!(dropped(&s), ["allowed_levers: needs the 'campaigns' lever"]);
    }

    #[test]
    fn scaling_needs_demand_to_bind_and_data_quality_adds_no_spend() {
        let s = run(
            tenant(),
            BindingConstraint::Conversion,
            vec![cand(ActionType::Scale, "c1", 120.0, 20.0, 1)],
        );
        assert_eq!(dropped(&s), ["no spend scaling while conversion binds"]);
        let s = run(
            tenant(),
            BindingConstraint::DataQuality,
            vec![cand(ActionType::ConfigChange, "c1", 120.0, 20.0, 1)],
        );
        assert_eq!(
            dropped(&s),
            ["data_quality: nothing adds spend while data is unreliable"]
        );
    }

    #[test]
    fn headroom_is_allotted_in_rank_order_and_trims_the_last_increase() {
        // 100/day under a 110 cap: 10 of headroom for two +20 increases.
        let t = tenant().guardrails(|g| g.max_daily_spend = Some(110.0));
        let s = run(
            t,
            BindingConstraint::Demand,
            vec![
                cand(ActionType::Scale, "c2", 120.0, 20.0, 2),
                cand(ActionType::Scale, "c1", 120.0, 20.0, 1),
            ],
        );
        assert_eq!(s.kept.len(), 1);
        let a = &s.kept[0];
        assert_eq!(a.target_entity.as_ref().unwrap().id, "c1");
        assert_eq!(a.proposed_change.new_value, json!(110.0));
        assert_eq!(a.guardrails.max_additional_spend, Some(10.0));
        assert_eq!(
            dropped(&s),
            ["max_daily_spend: no headroom (estimated daily spend 100.00 of cap 110.00)"]
        );
    }

    #[test]
    fn candidates_go_by_rank_then_evidence_then_id_and_at_most_seven_stay() {
        let mut cands: Vec<Candidate> = (0..9)
            .map(|i| {
                cand(
                    ActionType::ConfigChange,
                    &format!("c{i}"),
                    90.0,
                    0.0,
                    9 - i as u8,
                )
            })
            .collect();
        cands[0].rank = 1; // c0 ties c8 on rank 1 and wins on evidence.
        cands[0].evidence = 2.0;
        let s = run(tenant(), BindingConstraint::Economics, cands);
        let kept: Vec<&str> = s
            .kept
            .iter()
            .map(|a| a.target_entity.as_ref().unwrap().id.as_str())
            .collect();
        assert_eq!(kept, ["c0", "c8", "c7", "c6", "c5", "c4", "c3"]);
        assert_eq!(dropped(&s), ["cap of 7 actions", "cap of 7 actions"]);
    }

    #[test]
    fn an_action_without_an_abort_condition_is_dropped() {
        let mut k = cand(ActionType::ConfigChange, "c1", 90.0, 0.0, 1);
        k.action.guardrails.abort_conditions.clear();
        let s = run(tenant(), BindingConstraint::Economics, vec![k]);
        assert_eq!(
            dropped(&s),
            ["no abort condition on a metric the tenant reports"]
        );
    }

    #[test]
    fn levers_map_subsystems_and_entities() {
        let mut a = cand(ActionType::ConfigChange, "x", 1.0, 0.0, 1).action;
        assert_eq!(lever(&a), Lever::Campaigns);
        a.target_entity.as_mut().unwrap().kind = EntityType::Channel;
        assert_eq!(lever(&a), Lever::Channels);
        a.owner_subsystem = Subsystem::Content;
        assert_eq!(lever(&a), Lever::Sequences);
        a.target_entity.as_mut().unwrap().kind = EntityType::Campaign;
        assert_eq!(lever(&a), Lever::Campaigns);
        a.owner_subsystem = Subsystem::Routing;
        assert_eq!(lever(&a), Lever::Sequences);
    }

    #[test]
    fn check_passes_the_kernels_output_and_catches_tampering() {
        let c = tenant().checked();
        let out = crate::kernel::decide(&c, &Levers::default(), &CATALOG, now(), uuid::Uuid::nil())
            .unwrap();
        check(&out, &c).unwrap();
        let scale = out
            .actions
            .iter()
            .position(|a| a.kind == ActionType::Scale)
            .unwrap();

        let mut bad = out.clone();
        bad.actions[scale].proposed_change.new_value = json!(150.0);
        let v = check(&bad, &c).unwrap_err();
        assert!(
            v.iter()
                .any(|v| v.problem == "budget step 100 -> 150 exceeds 20%"),
            "{v:?}"
        );

        let mut bad = out.clone();
        bad.actions[scale].guardrails.max_additional_spend = None;
        assert!(check(&bad, &c).is_err());

        let pricing_only = tenant()
            .guardrails(|g| g.allowed_levers = vec![Lever::Pricing])
            .checked();
        let v = check(&out, &pricing_only).unwrap_err();
        assert!(
            v.iter()
                .any(|v| v.problem == "lever 'campaigns' is not allowed"),
            "{v:?}"
        );

        let mut bad = out;
        bad.actions.clear();
        let v = check(&bad, &c).unwrap_err();
        assert!(v.iter().any(|v| v.problem == "no actions"), "{v:?}");
    }
}
