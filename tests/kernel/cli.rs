//! `revenue-os kernel --explain`: the output on stdout, the trace on stderr.

use crate::support::{catalog, cycle, now, scenario};
use revenue_os::kernel;
use std::process::{Command, Output};

/// `revenue-os kernel` on the example tenant at its clock, plus `extra` arguments.
fn kernel(extra: &[&str]) -> Output {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/demand_bound.json"
    );
    Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["kernel", fixture, "--now", "2026-11-26T06:05:00Z"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn explain_prints_the_trace_to_stderr_and_the_output_to_stdout() {
    let out = kernel(&["--explain"]);
    assert!(out.status.success());
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["cycle_summary"]["binding_constraint"], "demand");
    // Exactly the library's trace (whose text the snapshots pin), and nothing else.
    let checked = scenario("demand_bound");
    let (_, trace) =
        kernel::decide_explained(&checked, &Default::default(), catalog(), now(), cycle(1));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), trace.to_string());
}

#[test]
fn without_explain_stderr_stays_empty() {
    let out = kernel(&[]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
}
