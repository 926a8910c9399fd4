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

/// Describes every metric and starts the unlabelled ones at zero, so dashboards see them
/// before the first event.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CYCLES,
        "Cycles recorded, by status and binding constraint or error code"
    );
    describe_histogram!(
        CYCLE_DURATION,
        metrics::Unit::Seconds,
        "Time from delivery to committed cycle"
    );
    describe_gauge!(
        OUTBOX_PENDING,
        "Unpublished outbox rows seen by the last sweep"
    );
    describe_counter!(
        PUBLISH_FAILURES,
        "Outbox publishes returned, nacked or lost"
    );
    describe_counter!(
        REDELIVERIES,
        "Trigger deliveries flagged redelivered by the broker"
    );
    describe_counter!(REJECTED, "Triggers dead-lettered or requeued, by reason");
    describe_counter!(RECONNECTS, "Broker sessions rebuilt after a failure");
    counter!(REDELIVERIES).increment(0);
    counter!(RECONNECTS).increment(0);
    for reason in ["returned", "nacked", "broker"] {
        counter!(PUBLISH_FAILURES, "reason" => reason).increment(0);
    }
    gauge!(OUTBOX_PENDING).set(0.0);
}
