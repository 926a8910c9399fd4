//! The contract's output rules, checked on every output before it leaves the kernel.
//! A violation here is a bug in the kernel, so it becomes `INTERNAL_ERROR`, never an output.

use super::error::{KernelError, Violation};
use super::types::*;
use crate::contract::catalog::{Catalog, FieldContext};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashSet;

pub const MAX_ACTIONS: usize = 7;

pub fn validate_output(
    out: &KernelOutput,
    input: &KernelInput,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<(), KernelError> {
    let mut v: Vec<Violation> = Vec::new();
    let mut push = |p: String, m: String| v.push(Violation::new(p, m));
    let metric = |id: &str| catalog.is_metric(id);

    if out.tenant_id != input.tenant_id {
        push(
            "tenant_id".into(),
            "differs from the input's tenant_id".into(),
        );
    }
    let s = &out.cycle_summary;
    if !metric(&s.priority_metric) {
        push(
            "cycle_summary.priority_metric".into(),
            format!("'{}' is not in the dictionary", s.priority_metric),
        );
    }
    if !(0.0..=1.0).contains(&s.confidence) {
        push(
            "cycle_summary.confidence".into(),
            format!("{} is outside [0, 1]", s.confidence),
        );
    }
    if s.diagnosis.trim().is_empty() {
        push("cycle_summary.diagnosis".into(), "is empty".into());
    }

    // Rule 1.
    if out.actions.is_empty() || out.actions.len() > MAX_ACTIONS {
        push(
            "actions".into(),
            format!(
                "has {} items; must have 1 to {MAX_ACTIONS}",
                out.actions.len()
            ),
        );
    }
    let mut ids = HashSet::new();
    let mut last_priority = 0u8;
    let today = now.date_naive();
    for (i, a) in out.actions.iter().enumerate() {
        let p = |f: &str| format!("actions[{i}].{f}");
        // Rule 5.
        if !ids.insert(a.action_id.as_str()) {
            push(p("action_id"), format!("'{}' is not unique", a.action_id));
        }
        if !(1..=MAX_ACTIONS as u8).contains(&a.priority) || a.priority <= last_priority {
            push(
                p("priority"),
                format!("{} breaks 1-7 ascending order", a.priority),
            );
        }
        last_priority = a.priority;
        // Rule 2, and every other metric reference.
        for (field, id) in [
            ("target_metric", &a.target_metric),
            ("expected_impact.metric_id", &a.expected_impact.metric_id),
        ] {
            if !metric(id) {
                push(p(field), format!("'{id}' is not in the dictionary"));
            }
        }
        for (j, c) in a.guardrails.abort_conditions.iter().enumerate() {
            if !metric(&c.metric_id) {
                push(
                    p(&format!("guardrails.abort_conditions[{j}].metric_id")),
                    format!("'{}' is not in the dictionary", c.metric_id),
                );
            }
            if c.consecutive_days < 2 || !c.threshold.is_finite() {
                push(
                    p(&format!("guardrails.abort_conditions[{j}]")),
                    "needs a finite threshold and consecutive_days >= 2".into(),
                );
            }
        }
        // Rule 3: an executor exists, runs this type, accepts this field and this value.
        match catalog.executor(a.owner_subsystem) {
            None => push(
                p("owner_subsystem"),
                format!("no executor for '{}'", a.owner_subsystem),
            ),
            Some(_) if !catalog.accepts(a.owner_subsystem, a.kind) => push(
                p("type"),
                format!(
                    "the {} executor does not run '{}'",
                    a.owner_subsystem, a.kind
                ),
            ),
            Some(_) => match catalog.field(a.owner_subsystem, &a.proposed_change.field) {
                None => push(
                    p("proposed_change.field"),
                    format!(
                        "the {} executor does not accept '{}'",
                        a.owner_subsystem, a.proposed_change.field
                    ),
                ),
                Some(spec) => {
                    let entity_budget_spent = a.target_entity.as_ref().and_then(|e| {
                        input
                            .campaigns
                            .iter()
                            .find(|c| c.id == e.id)
                            .map(|c| c.budget_spent)
                    });
                    let ctx = FieldContext {
                        max_daily_spend: input.guardrails.max_daily_spend,
                        entity_budget_spent,
                        today: Some(today),
                    };
                    if let Err(problem) = spec.check(&a.proposed_change.new_value, &ctx) {
                        push(p("proposed_change.new_value"), problem);
                    }
                }
            },
        }
        match (&a.experiment, a.kind) {
            (None, ActionType::Experiment) => {
                push(p("experiment"), "missing for an experiment".into())
            }
            (Some(_), t) if t != ActionType::Experiment => {
                push(p("experiment"), format!("present on a '{t}' action"))
            }
            (Some(e), _) => {
                if !metric(&e.success_metric) {
                    push(
                        p("experiment.success_metric"),
                        format!("'{}' is not in the dictionary", e.success_metric),
                    );
                }
                let sum = e.control_group_pct + e.treatment_group_pct;
                if e.control_group_pct < 0.0 || e.treatment_group_pct <= 0.0 || sum > 100.0 {
                    push(
                        p("experiment"),
                        format!(
                            "group split {}/{} is not a valid split of 100",
                            e.control_group_pct, e.treatment_group_pct
                        ),
                    );
                }
                if e.min_sample_size == 0 {
                    push(p("experiment.min_sample_size"), "must be positive".into());
                }
            }
            (None, _) => {}
        }
        if !(0.0..=1.0).contains(&a.expected_impact.confidence) {
            push(p("expected_impact.confidence"), "is outside [0, 1]".into());
        }
        if a.observation_window_days == 0 {
            push(p("observation_window_days"), "must be positive".into());
        }
        if a.notes_for_humans.trim().is_empty() {
            push(p("notes_for_humans"), "is empty".into());
        }
    }

    let dq = out.data_quality_actions.as_deref().unwrap_or_default();
    if s.binding_constraint == BindingConstraint::DataQuality && dq.is_empty() {
        push(
            "data_quality_actions".into(),
            "must be non-empty when the constraint is data_quality".into(),
        );
    }
    let mut dq_last = 0u8;
    for (i, d) in dq.iter().enumerate() {
        if !ids.insert(d.action_id.as_str()) {
            push(
                format!("data_quality_actions[{i}].action_id"),
                format!("'{}' is not unique", d.action_id),
            );
        }
        if d.priority <= dq_last {
            push(
                format!("data_quality_actions[{i}].priority"),
                "priorities must ascend".into(),
            );
        }
        dq_last = d.priority;
        if !metric(&d.affected_metric) {
            push(
                format!("data_quality_actions[{i}].affected_metric"),
                format!("'{}' is not in the dictionary", d.affected_metric),
            );
        }
    }

    let lp = &out.learning_plan;
    for (i, m) in lp.metrics_to_monitor.iter().enumerate() {
        if !metric(m) {
            push(
                format!("learning_plan.metrics_to_monitor[{i}]"),
                format!("'{m}' is not in the dictionary"),
            );
        }
    }
    for (i, o) in lp.expected_outcomes.iter().enumerate() {
        if !metric(&o.metric_id) {
            push(
                format!("learning_plan.expected_outcomes[{i}].metric_id"),
                format!("'{}' is not in the dictionary", o.metric_id),
            );
        }
    }
    if lp.observation_window_days == 0 {
        push(
            "learning_plan.observation_window_days".into(),
            "must be positive".into(),
        );
    }

    if v.is_empty() {
        Ok(())
    } else {
        Err(KernelError::internal(format!(
            "kernel produced an output that breaks {} output rule(s); nothing was emitted",
            v.len()
        ))
        .with("output_violations", json!(v)))
    }
}
