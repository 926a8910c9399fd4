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
pub const CYCLE_BATCH: &str = "revenue_os_cycle_batch_size";
pub const MARK_BATCH: &str = "revenue_os_outbox_mark_batch_size";
pub const OUTBOX_OLDEST_AGE: &str = "revenue_os_outbox_oldest_pending_age_seconds";
pub const OUTBOX_LAG: &str = "revenue_os_outbox_lag_seconds";
pub const DEAD_LETTERED: &str = "revenue_os_triggers_dead_lettered_total";
pub const DB_POOL_CONNECTIONS: &str = "revenue_os_db_pool_connections";
pub const DB_POOL_SIZE: &str = "revenue_os_db_pool_size";
pub const DB_POOL_WAITING: &str = "revenue_os_db_pool_waiting";
pub const REPORTS: &str = "revenue_os_reports_total";
pub const ACTIONS: &str = "revenue_os_actions";
pub const WATCHDOG_EVALUATIONS: &str = "revenue_os_watchdog_evaluations_total";
pub const REVERTS: &str = "revenue_os_reverts_total";
pub const OUTCOMES: &str = "revenue_os_outcomes_total";
pub const WOULD_REVERT: &str = "revenue_os_watchdog_would_revert_total";
pub const WATCHDOG_OVERDUE: &str = "revenue_os_watchdog_oldest_overdue_seconds";
pub const APPROVALS: &str = "revenue_os_approvals_total";
pub const APPROVALS_PENDING: &str = "revenue_os_approvals_pending";
pub const PERIODIC_RUNS: &str = "revenue_os_periodic_runs_total";
pub const HEAP: &str = "revenue_os_heap_bytes";

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

/// How many triggers' cycles one transaction committed together.
pub fn cycle_batch(size: usize) {
    histogram!(CYCLE_BATCH).record(size as f64);
}

/// How many publishes' confirmed rows one transaction marked published together.
pub fn mark_batch(size: usize) {
    histogram!(MARK_BATCH).record(size as f64);
}

pub fn stage(stage: &'static str, took: Duration) {
    histogram!(STAGE_DURATION, "stage" => stage).record(took.as_secs_f64());
}

/// The `reason` labels of the trigger counters: `worker::Failure::reason`, which is also the
/// `x-revenue-os-reason` of a dead letter.
pub const TRIGGER_FAILURE_REASONS: [&str; 7] = [
    "too_large",
    "malformed",
    "no_message_id",
    "unknown_tenant",
    "store",
    "broker",
    "internal_error",
];

pub fn dead_lettered(reason: &'static str) {
    counter!(DEAD_LETTERED, "reason" => reason).increment(1);
}

/// An executor report, by type and by what it did (applied, late, invalid_transition,
/// duplicate, dead_lettered).
pub fn report(kind: &'static str, result: &'static str) {
    counter!(REPORTS, "type" => kind, "result" => result).increment(1);
}

/// One watchdog evaluation, by verdict (watching, abort, would_revert, escalate, measured,
/// unmeasurable).
pub fn watchdog_evaluation(result: &'static str) {
    counter!(WATCHDOG_EVALUATIONS, "result" => result).increment(1);
}

pub fn revert(subsystem: String) {
    counter!(REVERTS, "subsystem" => subsystem).increment(1);
}

pub fn outcome(outcome: &'static str) {
    counter!(OUTCOMES, "outcome" => outcome).increment(1);
}

/// A revert that shadow mode recorded instead of publishing.
pub fn would_revert() {
    counter!(WOULD_REVERT).increment(1);
}

pub fn watchdog_overdue(secs: f64) {
    gauge!(WATCHDOG_OVERDUE).set(secs);
}

/// A decision on a held action: approved, rejected, expired, superseded, refused_stale.
pub fn approval(decision: &'static str) {
    counter!(APPROVALS, "decision" => decision).increment(1);
}

/// Actions per lifecycle status, sampled when `/metrics` is scraped.
pub fn actions_by_status(counts: &[(String, i64)]) {
    for s in crate::contract::ActionStatus::ALL {
        let n = counts
            .iter()
            .find(|(name, _)| name == s.as_str())
            .map_or(0, |(_, n)| *n);
        gauge!(ACTIONS, "status" => s.as_str()).set(n as f64);
        if *s == crate::contract::ActionStatus::PendingApproval {
            gauge!(APPROVALS_PENDING).set(n as f64);
        }
    }
}

/// Pool usage, sampled when `/metrics` is scraped.
pub fn db_pool(size: usize, available: usize, max_size: usize, waiting: usize) {
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(size.saturating_sub(available) as f64);
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(available as f64);
    gauge!(DB_POOL_SIZE).set(max_size as f64);
    gauge!(DB_POOL_WAITING).set(waiting as f64);
}

/// The allocator's heap after a trim, in bytes: in use, free inside it, mapped apart.
pub fn heap(in_use: u64, free: u64, mapped: u64) {
    gauge!(HEAP, "state" => "in_use").set(in_use as f64);
    gauge!(HEAP, "state" => "free").set(free as f64);
    gauge!(HEAP, "state" => "mapped").set(mapped as f64);
}

pub fn publish_failure(reason: &'static str) {
    counter!(PUBLISH_FAILURES, "reason" => reason).increment(1);
}

pub fn redelivery() {
    counter!(REDELIVERIES).increment(1);
}

/// One run of a periodic service, by result (ok, unreachable, failed).
pub fn periodic_run(service: &'static str, result: &'static str) {
    counter!(PERIODIC_RUNS, "service" => service, "result" => result).increment(1);
}

pub fn reconnect() {
    counter!(RECONNECTS).increment(1);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported series: what the exporter describes, and what dashboards and tests may use.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub seconds: bool,
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        seconds: false,
        help,
    }
}

const fn secs(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        seconds: true,
        ..m(name, kind, labels, help)
    }
}

/// Every metric the worker exports: the one list `describe`, the docs test and the
/// dashboard test read.
pub const ALL: &[Metric] = &[
    m(
        CYCLES,
        Kind::Counter,
        &["status", "constraint"],
        "Cycles recorded, by status and binding constraint or error code",
    ),
    secs(
        CYCLE_DURATION,
        Kind::Histogram,
        &["status"],
        "Time from delivery to committed cycle",
    ),
    m(
        OUTBOX_PENDING,
        Kind::Gauge,
        &[],
        "Unpublished outbox rows seen by the last sweep",
    ),
    m(
        PUBLISH_FAILURES,
        Kind::Counter,
        &["reason"],
        "Outbox publishes returned, nacked or lost",
    ),
    m(
        REDELIVERIES,
        Kind::Counter,
        &[],
        "Trigger deliveries flagged redelivered by the broker",
    ),
    m(
        REJECTED,
        Kind::Counter,
        &["reason"],
        "Triggers dead-lettered or requeued, by reason",
    ),
    m(
        RECONNECTS,
        Kind::Counter,
        &[],
        "Broker sessions rebuilt after a failure",
    ),
    m(
        CYCLE_BATCH,
        Kind::Histogram,
        &[],
        "Triggers whose cycles one transaction committed together",
    ),
    m(
        MARK_BATCH,
        Kind::Histogram,
        &[],
        "Publishes whose confirmed outbox rows one transaction marked published together",
    ),
    secs(
        STAGE_DURATION,
        Kind::Histogram,
        &["stage"],
        "Time per cycle stage: assemble, decide, persist (insert + commit), publish (confirmed)",
    ),
    secs(
        OUTBOX_OLDEST_AGE,
        Kind::Gauge,
        &[],
        "Age of the oldest unpublished outbox row (0 when none)",
    ),
    secs(
        OUTBOX_LAG,
        Kind::Histogram,
        &[],
        "Time from an outbox row's commit to the broker's confirm",
    ),
    m(
        DEAD_LETTERED,
        Kind::Counter,
        &["reason"],
        "Triggers rejected to the dead-letter queue, by reason",
    ),
    m(
        DB_POOL_CONNECTIONS,
        Kind::Gauge,
        &["state"],
        "Database pool connections, by state",
    ),
    m(DB_POOL_SIZE, Kind::Gauge, &[], "Database pool maximum size"),
    m(
        DB_POOL_WAITING,
        Kind::Gauge,
        &[],
        "Tasks waiting for a database connection",
    ),
    m(
        REPORTS,
        Kind::Counter,
        &["type", "result"],
        "Executor reports, by type and result (applied, late, invalid_transition, duplicate, dead_lettered)",
    ),
    m(
        ACTIONS,
        Kind::Gauge,
        &["status"],
        "Actions per lifecycle status",
    ),
    m(
        WATCHDOG_EVALUATIONS,
        Kind::Counter,
        &["result"],
        "Watchdog evaluations, by verdict",
    ),
    m(
        REVERTS,
        Kind::Counter,
        &["subsystem"],
        "Reverts the watchdog published, by subsystem",
    ),
    m(
        OUTCOMES,
        Kind::Counter,
        &["outcome"],
        "Outcomes the watchdog measured",
    ),
    m(
        WOULD_REVERT,
        Kind::Counter,
        &[],
        "Reverts shadow mode recorded instead of publishing",
    ),
    m(
        APPROVALS,
        Kind::Counter,
        &["decision"],
        "Decisions on held actions: approved, rejected, expired, superseded, refused_stale",
    ),
    m(
        APPROVALS_PENDING,
        Kind::Gauge,
        &[],
        "Actions waiting for a person's approval",
    ),
    secs(
        WATCHDOG_OVERDUE,
        Kind::Gauge,
        &[],
        "Time since the oldest action due for evaluation last changed (0 when none is due)",
    ),
    m(
        PERIODIC_RUNS,
        Kind::Counter,
        &["service", "result"],
        "Runs of each periodic service (outbox_sweep, watchdog_sweep, approval_expiry, ...) by result",
    ),
    m(
        HEAP,
        Kind::Gauge,
        &["state"],
        "The allocator's heap in bytes: in_use, free (held in the heap) and mapped (large blocks)",
    ),
];

/// Describes every metric and starts the unlabelled ones at zero, so dashboards see them
/// before the first event.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    for metric in ALL {
        let (name, help) = (metric.name, metric.help);
        match (metric.kind, metric.seconds) {
            (Kind::Counter, _) => describe_counter!(name, help),
            (Kind::Gauge, false) => describe_gauge!(name, help),
            (Kind::Gauge, true) => describe_gauge!(name, Unit::Seconds, help),
            (Kind::Histogram, false) => describe_histogram!(name, help),
            (Kind::Histogram, true) => describe_histogram!(name, Unit::Seconds, help),
        }
    }
    counter!(REDELIVERIES).increment(0);
    counter!(WOULD_REVERT).increment(0);
    gauge!(APPROVALS_PENDING).set(0.0);
    gauge!(WATCHDOG_OVERDUE).set(0.0);
    counter!(RECONNECTS).increment(0);
    for reason in ["returned", "nacked", "broker"] {
        counter!(PUBLISH_FAILURES, "reason" => reason).increment(0);
    }
    gauge!(OUTBOX_PENDING).set(0.0);
    gauge!(OUTBOX_OLDEST_AGE).set(0.0);
    for reason in TRIGGER_FAILURE_REASONS {
        counter!(DEAD_LETTERED, "reason" => reason).increment(0);
    }
}
