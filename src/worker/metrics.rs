//! Metric names, in one place so the docs and dashboards can rely on them.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const CYCLES: &str = "revenue_os_cycles_total";
pub const CYCLE_DURATION: &str = "revenue_os_cycle_duration_seconds";
pub const OUTBOX_PENDING: &str = "revenue_os_outbox_pending";
pub const PUBLISH_FAILURES: &str = "revenue_os_publish_failures_total";
pub const REDELIVERIES: &str = "revenue_os_redeliveries_total";
pub const REJECTED: &str = "revenue_os_triggers_rejected_total";
pub const RECONNECTS: &str = "revenue_os_broker_reconnects_total";

/// `constraint` is the binding constraint of a completed cycle, or the error code otherwise.
pub fn cycle(status: &str, constraint: &str, took: Duration) {
    counter!(CYCLES, "status" => status.to_owned(), "constraint" => constraint.to_owned())
        .increment(1);
    histogram!(CYCLE_DURATION, "status" => status.to_owned()).record(took.as_secs_f64());
}

pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

pub fn outbox_pending(n: usize) {
    gauge!(OUTBOX_PENDING).set(n as f64);
}

pub fn publish_failure(reason: &'static str) {
    counter!(PUBLISH_FAILURES, "reason" => reason).increment(1);
}

pub fn redelivery() {
    counter!(REDELIVERIES).increment(1);
}

pub fn reconnect() {
    counter!(RECONNECTS).increment(1);
}
