//! Byte-exact snapshots of the kernel's whole answer on every fixture: the pretty JSON of the
//! `KernelOutput` (or `KernelError`) exactly as `serde_json::to_string_pretty` writes it, and
//! the `--explain` trace. The clock and the cycle id are fixed, so any change to a decision, a
//! number or a sentence shows up here as a diff. Update deliberately with
//! `INSTA_UPDATE=always cargo test --test kernel snapshots`, then review the diff; with
//! `CI=true` a mismatch fails and nothing is written.

use revenue_os::Catalog;
use revenue_os::kernel;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const NOW: &str = "2026-11-26T06:05:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::embedded().unwrap())
}

/// The kernel's answer to one fixture file as `revenue-os kernel` computes it: (document, trace).
fn answer(file: &str) -> (String, String) {
    let path = root().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let now = revenue_os::contract::parse_timestamp(NOW).unwrap();
    let (result, trace) = kernel::run_explained(
        &bytes,
        &revenue_os::contract::Levers::default(),
        catalog(),
        now,
        uuid::Uuid::from_u128(1),
    );
    let doc = match result {
        Ok(out) => serde_json::to_string_pretty(&out),
        Err(err) => serde_json::to_string_pretty(&err),
    }
    .unwrap();
    let trace = trace.to_string();
    // insta ignores trailing newlines; pin them here so the comparison stays byte-exact.
    assert_eq!(doc.trim_end(), doc);
    assert!(trace.ends_with('\n') && !trace.ends_with("\n\n"));
    (doc, trace)
}

/// One test per fixture, and the list of covered files, so a new fixture cannot go unsnapshotted.
macro_rules! snapshots {
    (decided { $($d:ident => $dfile:literal,)* } rejected { $($r:ident => $rfile:literal,)* }) => {
        $(
            #[test]
            fn $d() {
                let (doc, trace) = answer($dfile);
                insta::assert_snapshot!(concat!(stringify!($d), "_output"), doc);
                insta::assert_snapshot!(concat!(stringify!($d), "_trace"), trace);
            }
        )*
        $(
            #[test]
            fn $r() {
                let (doc, _) = answer($rfile);
                insta::assert_snapshot!(concat!(stringify!($r), "_error"), doc);
            }
        )*
        const COVERED: &[&str] = &[$($dfile,)* $($rfile,)*];
    };
}

snapshots! {
    decided {
        demand_bound => "valid/demand_bound.json",
        blocked_experiment_scale => "scenarios/blocked_experiment_scale.json",
        conversion_bound => "scenarios/conversion_bound.json",
        economics_breach => "scenarios/economics_breach.json",
        exposure_cap_10 => "scenarios/exposure_cap_10.json",
        failed_action => "scenarios/failed_action.json",
        healthy => "scenarios/healthy.json",
        learning_mixed => "scenarios/learning_mixed.json",
        margin_floor => "scenarios/margin_floor.json",
        no_spend_headroom => "scenarios/no_spend_headroom.json",
        pricing_only => "scenarios/pricing_only.json",
        small_spend_cap => "scenarios/small_spend_cap.json",
        stale_data => "scenarios/stale_data.json",
        unattributed_75 => "scenarios/unattributed_75.json",
    }
    rejected {
        invalid_bad_timestamp => "invalid/bad_timestamp.json",
        invalid_bad_uuid => "invalid/bad_uuid.json",
        invalid_empty => "invalid/empty.json",
        invalid_empty_levers => "invalid/empty_levers.json",
        invalid_exposure_over_100 => "invalid/exposure_over_100.json",
        invalid_impossible_date => "invalid/impossible_date.json",
        invalid_malformed => "invalid/malformed.json",
        invalid_missing_field => "invalid/missing_field.json",
        invalid_missing_required_metric => "invalid/missing_required_metric.json",
        invalid_multiple_problems => "invalid/multiple_problems.json",
        invalid_nan => "invalid/nan.json",
        invalid_negative_budget => "invalid/negative_budget.json",
        invalid_no_targets => "invalid/no_targets.json",
        invalid_null_optional => "invalid/null_optional.json",
        invalid_reversed_window => "invalid/reversed_window.json",
        invalid_trigger_in_future => "invalid/trigger_in_future.json",
        invalid_trigger_too_old => "invalid/trigger_too_old.json",
        invalid_unknown_blocked_action => "invalid/unknown_blocked_action.json",
        invalid_unknown_field_in_targets => "invalid/unknown_field_in_targets.json",
        invalid_unknown_levers => "invalid/unknown_levers.json",
        invalid_unknown_metric_id => "invalid/unknown_metric_id.json",
        invalid_unknown_trigger_type => "invalid/unknown_trigger_type.json",
        invalid_win_probability_out_of_range => "invalid/win_probability_out_of_range.json",
        invalid_wrong_type => "invalid/wrong_type.json",
        invalid_zero_target => "invalid/zero_target.json",
    }
}

#[test]
fn every_kernel_fixture_has_a_snapshot() {
    let mut files = Vec::new();
    for dir in ["valid", "scenarios", "invalid"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            // cases.json is the invalid set's expectations, not a kernel input.
            if Path::new(name).extension().is_some_and(|e| e == "json") && name != "cases.json" {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    let mut covered: Vec<String> = COVERED.iter().map(|s| (*s).to_owned()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
