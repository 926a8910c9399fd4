//! Shared helpers of the kernel tests: fixtures, the fixed clock, and the checks every output
//! must pass (seed schema, output rules, guardrails).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use revenue_os::catalog::Catalog;
use revenue_os::contract::{KernelError, KernelInput, KernelOutput, validate_output};
use revenue_os::kernel;
use std::path::PathBuf;
use std::sync::OnceLock;

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

pub fn scenario(name: &str) -> KernelInput {
    let path = if name == "demand_bound" {
        root().join("tests/fixtures/valid/demand_bound.json")
    } else {
        root().join(format!("tests/fixtures/scenarios/{name}.json"))
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    revenue_os::contract::parse_input(&bytes, catalog(), now())
        .unwrap_or_else(|e| panic!("{name} is not a valid input: {e:?}"))
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

pub fn decide(input: &KernelInput) -> Result<KernelOutput, KernelError> {
    kernel::decide(input, catalog(), now(), cycle(1))
}

/// Schema, output rules and guardrails: what every emitted output must satisfy.
pub fn assert_sound(out: &KernelOutput, input: &KernelInput) {
    let value = serde_json::to_value(out).unwrap();
    let errors: Vec<String> = output_schema()
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema: {errors:?}");
    validate_output(out, input, catalog(), now()).unwrap();
    if let Err(v) = kernel::guard::check(out, input) {
        panic!("guardrails: {v:?}");
    }
    assert!((1..=7).contains(&out.actions.len()));
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
pub fn assert_deterministic(input: &KernelInput) {
    let a = kernel::decide(input, catalog(), now(), cycle(1));
    let b = kernel::decide(input, catalog(), now(), cycle(2));
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
