//! The decision engine: a pure function of input, catalog and clock. No I/O, no randomness.

use crate::catalog::{Bound, Catalog};
use crate::contract::*;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

/// Decides one cycle for a validated input.
pub fn decide(
    input: &KernelInput,
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> Result<KernelOutput, KernelError> {
    // Foundation rule: the target furthest from its metric's latest value binds.
    let mut worst: Option<(f64, &str, f64, f64)> = None;
    for (field, target) in input.targets.defined() {
        let Some(def) = catalog.target(field) else {
            continue;
        };
        let Some(latest) = input
            .metrics
            .iter()
            .filter(|m| m.metric_id == def.metric && m.dimension.is_none())
            .max_by(|a, b| a.date.cmp(&b.date))
        else {
            continue;
        };
        let gap = match def.bound {
            Bound::AtLeast => (target - latest.value) / target,
            Bound::AtMost => (latest.value - target) / target,
        };
        if worst.is_none_or(|(g, ..)| gap > g) {
            worst = Some((gap, def.metric.as_str(), latest.value, target));
        }
    }
    let (gap, metric, value, target) = worst.unwrap_or((0.0, "pipeline_total", 0.0, 0.0));
    let lens = catalog
        .metric(metric)
        .map(|m| m.lens.as_str())
        .unwrap_or("demand");
    let constraint = match lens {
        "conversion" => BindingConstraint::Conversion,
        "economics" => BindingConstraint::Economics,
        _ => BindingConstraint::Demand,
    };
    let out = KernelOutput {
        tenant_id: input.tenant_id.clone(),
        cycle_id: cycle_id.to_string(),
        executed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        version: Version::V1,
        cycle_summary: CycleSummary {
            binding_constraint: constraint,
            priority_metric: metric.to_owned(),
            diagnosis: format!(
                "{metric} is {value} against a target of {target} ({:.0}% gap).",
                gap * 100.0
            ),
            confidence: 0.5,
        },
        actions: vec![Action {
            action_id: "crm.config_change.follow_up_sla_hours".into(),
            priority: 1,
            owner_subsystem: Subsystem::Crm,
            kind: ActionType::ConfigChange,
            target_metric: metric.to_owned(),
            target_entity: None,
            proposed_change: ProposedChange {
                field: "follow_up_sla_hours".into(),
                current_value: json!(48),
                new_value: json!(24),
            },
            guardrails: ActionGuardrails {
                max_additional_spend: None,
                max_exposure_percent: None,
                abort_conditions: vec![],
            },
            experiment: None,
            observation_window_days: 14,
            expected_impact: ExpectedImpact {
                metric_id: metric.to_owned(),
                direction: ImpactDirection::Increase,
                magnitude_pct: 5.0,
                confidence: 0.5,
            },
            notes_for_humans: format!("{metric} is furthest from its target."),
        }],
        data_quality_actions: None,
        learning_plan: LearningPlan {
            metrics_to_monitor: vec![metric.to_owned()],
            observation_window_days: 14,
            expected_outcomes: vec![],
        },
    };
    validate_output(&out, input, catalog, now)?;
    Ok(out)
}

/// The whole offline path: bytes in, one decision or one error out.
pub fn run(
    bytes: &[u8],
    catalog: &Catalog,
    now: DateTime<Utc>,
    cycle_id: Uuid,
) -> Result<KernelOutput, KernelError> {
    let input = parse_input(bytes, catalog, now)?;
    decide(&input, catalog, now, cycle_id)
}
