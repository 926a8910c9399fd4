//! docs/worker.md names every reason a dead-lettered trigger can carry, so an operator reading
//! `revenue-os dlq list` finds each one explained.

use revenue_os::telemetry::metrics::TRIGGER_FAILURE_REASONS;
use std::path::PathBuf;

#[test]
fn the_worker_guide_names_every_trigger_dead_letter_reason() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/worker.md");
    let text = std::fs::read_to_string(&path).unwrap();
    for reason in TRIGGER_FAILURE_REASONS.iter().chain(&["delivery_limit"]) {
        assert!(
            text.contains(&format!("| `{reason}` |")),
            "docs/worker.md has no row explaining the dead-letter reason `{reason}`"
        );
    }
}
