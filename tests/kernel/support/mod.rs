//! Shared helpers of the kernel tests: fixtures, the fixed clock, and the checks every output
//! must pass (seed schema, output rules, guardrails).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::{
    Checked, KernelError, KernelInput, KernelOutput, Levers, validate_output,
};
use revenue_os::kernel;
use std::path::PathBuf;
use std::sync::OnceLock;

pub mod rng;

/// Where proptest keeps a module's failing seeds: `<module>.proptest-regressions` beside its
/// file. (proptest's default looks for a directory with a main.rs, finds `tests/kernel/`, and
/// would use `tests/proptest-regressions/<module>.txt` instead.)
pub fn beside_the_source() -> proptest::test_runner::FileFailurePersistence {
    proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions")
}

pub const NOW: &str = "2026-11-26T06:05:00Z";

pub fn now() -> DateTime<Utc> {
    revenue_os::contract::parse_timestamp(NOW).unwrap()
}

pub fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::embedded().unwrap())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str) -> Checked {
    let path = if name == "demand_bound" {
        root().join("tests/fixtures/valid/demand_bound.json")
    } else {
        root().join(format!("tests/fixtures/scenarios/{name}.json"))
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    revenue_os::contract::parse_input(&bytes, catalog(), now())
        .unwrap_or_else(|e| panic!("{name} is not a valid input: {e:?}"))
}

/// Checks an input built or edited by a test; it must be valid.
pub fn check(input: KernelInput) -> Checked {
    revenue_os::contract::check_input(input, catalog(), now())
        .unwrap_or_else(|e| panic!("not a valid input: {e:?}"))
}

/// The seed-derived output schema shipped beside the repository (`../shared/contract`).
pub fn output_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = root().join("../shared/contract/kernel-output.schema.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::draft7::new(&schema).unwrap()
    })
}

pub fn cycle(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

pub fn decide(checked: &Checked) -> Result<KernelOutput, KernelError> {
    kernel::decide(checked, &Levers::default(), catalog(), now(), cycle(1))
}

/// Schema, output rules and guardrails: what every emitted output must satisfy.
pub fn assert_sound(out: &KernelOutput, checked: &Checked) {
    let input = checked.input();
    let value = serde_json::to_value(out).unwrap();
    let errors: Vec<String> = output_schema()
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema: {errors:?}");
    validate_output(out, input, catalog(), now()).unwrap();
    if let Err(v) = kernel::guard::check(out, checked) {
        panic!("guardrails: {v:?}");
    }
    assert!((1..=7).contains(&out.actions.len()));
    assert_guardrails_independently(out, input);
    for a in &out.actions {
        let needs_abort = matches!(
            a.kind,
            revenue_os::contract::ActionType::Scale | revenue_os::contract::ActionType::Experiment
        ) || a.guardrails.max_additional_spend.is_some();
        if needs_abort {
            assert!(!a.guardrails.abort_conditions.is_empty(), "{}", a.action_id);
        }
        assert!(
            a.guardrails
                .abort_conditions
                .iter()
                .all(|c| c.consecutive_days >= 2)
        );
    }
}

/// Two runs with different cycle ids serialise identically once the cycle id is aligned.
pub fn assert_deterministic(checked: &Checked) {
    let a = kernel::decide(checked, &Levers::default(), catalog(), now(), cycle(1));
    let b = kernel::decide(checked, &Levers::default(), catalog(), now(), cycle(2));
    match (a, b) {
        (Ok(a), Ok(mut b)) => {
            assert_ne!(a.cycle_id, b.cycle_id);
            b.cycle_id = a.cycle_id.clone();
            assert_eq!(
                serde_json::to_vec(&a).unwrap(),
                serde_json::to_vec(&b).unwrap()
            );
        }
        (Err(a), Err(b)) => assert_eq!(
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap()
        ),
        (a, b) => panic!("runs disagree: {a:?} vs {b:?}"),
    }
}

fn day(s: &str) -> i64 {
    use chrono::Datelike;
    revenue_os::contract::parse_date(s)
        .unwrap()
        .num_days_from_ce() as i64
}

/// The guardrails of issue 3 re-derived here from the input alone, without the kernel's code.
pub fn assert_guardrails_independently(out: &KernelOutput, input: &KernelInput) {
    use revenue_os::contract::{
        ActionType as T, EntityType as E, Lever as L, Outcome, Subsystem as S,
    };
    let g = &input.guardrails;
    let blocked = g.blocked_actions.clone().unwrap_or_default();
    let reported: std::collections::BTreeSet<&str> =
        input.metrics.iter().map(|m| m.metric_id.as_str()).collect();
    let failed: Vec<&str> = input
        .recent_action_results
        .iter()
        .flatten()
        .filter(|r| r.outcome == Outcome::Failed)
        .map(|r| r.action_id.as_str())
        .collect();
    let step = match input.config.as_ref().and_then(|c| c.risk_tolerance) {
        Some(revenue_os::contract::RiskTolerance::Low) => 0.10,
        Some(revenue_os::contract::RiskTolerance::High) => 0.30,
        _ => 0.20,
    };
    let min_sample = input
        .config
        .as_ref()
        .and_then(|c| c.min_sample_size)
        .unwrap_or(0.0);
    // Estimated current daily spend of running campaigns.
    let end = day(&input.analysis_window.end_date);
    // Running: by status, and the window end lies within the campaign's dates.
    let daily_total: f64 = input
        .campaigns
        .iter()
        .filter(|c| matches!(c.status.to_ascii_lowercase().as_str(), "running" | "active"))
        .filter(|c| {
            day(&c.start_date) <= end && c.end_date.as_deref().is_none_or(|e| day(e) >= end)
        })
        .map(|c| {
            let stop = c.end_date.as_deref().map_or(end, |e| day(e).min(end));
            c.budget_spent / ((stop - day(&c.start_date) + 1).max(1) as f64)
        })
        .sum();
    let dq = out.cycle_summary.binding_constraint
        == revenue_os::contract::BindingConstraint::DataQuality;
    let mut added = 0.0;
    for a in &out.actions {
        let id = &a.action_id;
        assert!(
            !blocked.iter().any(|b| b == a.kind.as_str()),
            "{id}: blocked type"
        );
        let entity = a.target_entity.as_ref().map(|e| e.kind);
        let lever = match a.owner_subsystem {
            S::Campaigns if entity == Some(E::Channel) => L::Channels,
            S::Campaigns => L::Campaigns,
            S::Content if entity == Some(E::Campaign) => L::Campaigns,
            S::Content | S::Crm | S::Routing => L::Sequences,
            S::Pricing => L::Pricing,
        };
        assert!(
            g.allowed_levers.contains(&lever),
            "{id}: lever {lever} not allowed"
        );
        assert!(!failed.contains(&id.as_str()), "{id}: failed recently");
        let spend_change = a.owner_subsystem == S::Campaigns
            && matches!(
                a.proposed_change.field.as_str(),
                "budget_daily" | "budget_total" | "status"
            );
        if matches!(a.kind, T::Scale | T::Experiment) || spend_change {
            assert!(
                !a.guardrails.abort_conditions.is_empty(),
                "{id}: no abort condition"
            );
        }
        for c in &a.guardrails.abort_conditions {
            assert!(c.consecutive_days >= 2, "{id}");
            assert!(
                reported.contains(c.metric_id.as_str()),
                "{id}: abort on unreported {}",
                c.metric_id
            );
        }
        if let Some(m) = a.guardrails.max_additional_spend {
            assert!(m >= 0.0);
            added += m;
            assert!(!dq || m == 0.0, "{id}: adds spend under data_quality");
        }
        if a.kind == T::Scale {
            assert!(!dq, "{id}: scale under data_quality");
            assert!(
                a.guardrails.max_additional_spend.is_some(),
                "{id}: scale without max_additional_spend"
            );
        }
        // A revert restores the exact prior value, whatever step that is.
        if a.proposed_change.field == "budget_daily"
            && a.kind != T::Revert
            && let (Some(cur), Some(new)) = (
                a.proposed_change.current_value.as_f64(),
                a.proposed_change.new_value.as_f64(),
            )
        {
            assert!(
                (new - cur).abs() <= cur * step + 0.011,
                "{id}: step {cur} -> {new}"
            );
            if new > cur {
                assert!(
                    a.guardrails.max_additional_spend.unwrap() + 0.011 >= new - cur,
                    "{id}"
                );
            }
            if let Some(cap) = g.max_daily_spend {
                assert!(new <= cap, "{id}: above max_daily_spend");
            }
        }
        if let Some(cap) = g.max_experiment_exposure_pct {
            assert!(
                a.guardrails.max_exposure_percent.is_none_or(|x| x <= cap),
                "{id}"
            );
        }
        if let Some(e) = &a.experiment {
            if let Some(cap) = g.max_experiment_exposure_pct {
                assert!(e.treatment_group_pct <= cap, "{id}: exposure above cap");
            }
            assert!(e.control_group_pct + e.treatment_group_pct <= 100.0, "{id}");
            assert!(
                e.min_sample_size as f64 >= min_sample,
                "{id}: sample below config"
            );
        }
    }
    // Issue 13's promises, re-derived from the input and the dictionary alone.
    let mut changed = std::collections::BTreeSet::new();
    let channels: std::collections::BTreeSet<&str> = input
        .revenue_events
        .iter()
        .filter_map(|e| e.attributed_channel.as_deref())
        .collect();
    for a in &out.actions {
        let id = &a.action_id;
        let c = &a.proposed_change;
        assert!(c.new_value != c.current_value, "{id}: changes nothing");
        let spend = a.owner_subsystem == S::Campaigns
            && matches!(c.field.as_str(), "status" | "budget_daily" | "budget_total");
        let key = (
            a.owner_subsystem,
            a.target_entity.as_ref().map(|e| e.id.clone()),
            if spend {
                "spend".into()
            } else {
                c.field.clone()
            },
        );
        assert!(
            changed.insert(key),
            "{id}: a second action on that entity and field"
        );
        if let Some(e) = &a.target_entity {
            match e.kind {
                E::Campaign => assert!(
                    input.campaigns.iter().any(|c| c.id == e.id),
                    "{id}: campaign {} is not in the input",
                    e.id
                ),
                E::Channel => assert!(
                    channels.contains(e.id.as_str()),
                    "{id}: no channel {}",
                    e.id
                ),
                E::Segment | E::Sequence => {}
            }
        }
        for c in &a.guardrails.abort_conditions {
            let unit = catalog().metric(&c.metric_id).unwrap().unit;
            use revenue_os::contract::Operator as O;
            use revenue_os::contract::catalog::Unit as U;
            let hi = match unit {
                U::Fraction if c.metric_id != "net_revenue_retention" => 1.0,
                U::Percent => 100.0,
                _ => f64::INFINITY,
            };
            let fires = match c.operator {
                O::Lt | O::Le => c.threshold > 0.0 || c.metric_id == "pipeline_velocity",
                O::Gt | O::Ge => c.threshold < hi,
            };
            assert!(
                fires,
                "{id}: abort {} {} {} can never fire",
                c.metric_id, c.operator, c.threshold
            );
        }
    }
    if let Some(cap) = g.max_daily_spend
        && daily_total > cap + 0.01
    {
        assert!(
            added <= 0.0 && out.actions.iter().all(|a| a.kind != T::Scale),
            "adds spend while running spend {daily_total} exceeds the cap {cap}"
        );
    }
    if let Some(cap) = g.max_daily_spend {
        let headroom = (cap - daily_total).max(0.0);
        assert!(
            added <= headroom + 0.01,
            "adds {added}/day with headroom {headroom}"
        );
    }
}
