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
pub const STAGE_DURATION: &str = "revenue_os_cycle_stage_duration_seconds";
pub const OUTBOX_OLDEST_AGE: &str = "revenue_os_outbox_oldest_pending_age_seconds";
pub const OUTBOX_LAG: &str = "revenue_os_outbox_lag_seconds";
pub const DEAD_LETTERED: &str = "revenue_os_triggers_dead_lettered_total";
pub const DB_POOL_CONNECTIONS: &str = "revenue_os_db_pool_connections";
pub const DB_POOL_SIZE: &str = "revenue_os_db_pool_size";
pub const DB_POOL_WAITING: &str = "revenue_os_db_pool_waiting";

/// The stages of a cycle, in order.
pub const STAGES: [&str; 4] = ["assemble", "decide", "persist", "publish"];

/// `constraint` is the binding constraint of a completed cycle, or the error code otherwise.
pub fn cycle(status: &str, constraint: &str, took: Duration) {
    counter!(CYCLES, "status" => status.to_owned(), "constraint" => constraint.to_owned())
        .increment(1);
    histogram!(CYCLE_DURATION, "status" => status.to_owned()).record(took.as_secs_f64());
}

pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

/// Unpublished outbox rows and the age of the oldest, from the sweeper's count.
pub fn outbox_backlog(pending: i64, oldest_age_secs: f64) {
    gauge!(OUTBOX_PENDING).set(pending as f64);
    gauge!(OUTBOX_OLDEST_AGE).set(oldest_age_secs);
}

/// Time from a row's commit to the broker's confirm.
pub fn outbox_lag(secs: f64) {
    histogram!(OUTBOX_LAG).record(secs);
}

pub fn stage(stage: &'static str, took: Duration) {
    histogram!(STAGE_DURATION, "stage" => stage).record(took.as_secs_f64());
}

pub fn dead_lettered(reason: &'static str) {
    counter!(DEAD_LETTERED, "reason" => reason).increment(1);
}

/// Pool usage, sampled when `/metrics` is scraped.
pub fn db_pool(size: usize, available: usize, max_size: usize, waiting: usize) {
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(size.saturating_sub(available) as f64);
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(available as f64);
    gauge!(DB_POOL_SIZE).set(max_size as f64);
    gauge!(DB_POOL_WAITING).set(waiting as f64);
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
    describe_histogram!(
        STAGE_DURATION,
        metrics::Unit::Seconds,
        "Time per cycle stage: assemble, decide, persist (insert + commit), publish (confirmed)"
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest unpublished outbox row (0 when none)"
    );
    describe_histogram!(
        OUTBOX_LAG,
        metrics::Unit::Seconds,
        "Time from an outbox row's commit to the broker's confirm"
    );
    describe_counter!(
        DEAD_LETTERED,
        "Triggers rejected to the dead-letter queue, by reason"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state");
    describe_gauge!(DB_POOL_SIZE, "Database pool maximum size");
    describe_gauge!(DB_POOL_WAITING, "Tasks waiting for a database connection");
    counter!(REDELIVERIES).increment(0);
    counter!(RECONNECTS).increment(0);
    for reason in ["returned", "nacked", "broker"] {
        counter!(PUBLISH_FAILURES, "reason" => reason).increment(0);
    }
    gauge!(OUTBOX_PENDING).set(0.0);
    gauge!(OUTBOX_OLDEST_AGE).set(0.0);
    for reason in [
        "malformed",
        "missing_message_id",
        "TENANT_NOT_FOUND",
        "store",
        "INTERNAL_ERROR",
    ] {
        counter!(DEAD_LETTERED, "reason" => reason).increment(0);
    }
}
