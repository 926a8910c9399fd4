//! `revenue-os` subcommands, one file each: its clap `Args` and its `run`. Each returns
//! `Result<Output, Error>`; `main` prints it and takes the exit code from `Error::exit_code`,
//! the one table.

mod approvals;
mod approve;
mod assemble;
mod audit;
mod bench;
mod config;
mod console;
mod demo;
mod deviations;
mod dlq;
mod grants;
mod import;
mod ingest;
mod ingest_bench;
mod kernel;
mod loads;
mod migrate;
mod operator;
mod reject;
mod report;
mod schema;
mod tenant;
mod trigger;
mod watch;
mod webhook;
mod worker;

use crate::config::Settings;
use crate::contract::catalog::Catalog;
use crate::contract::{DateRange, parse_date, parse_timestamp};
use crate::error::Error;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use std::io::Read;
use tokio_util::sync::CancellationToken;

#[derive(Subcommand)]
pub enum Command {
    /// Named console operators: add (prints a one-time token), list, revoke.
    Operator(operator::Args),
    /// A tenant's webhooks (add, list, remove) and deliveries still tried or dead.
    Webhook(webhook::Args),
    /// The audit trail (decisions, executor reports, reverts, evaluations, outcomes, cycles,
    /// policy changes), streamed as CSV or JSON lines.
    Audit(audit::Args),
    /// The walkthrough: create and migrate the database, import the example tenant, run a
    /// worker, publish a trigger, and print every action as the executors receive it.
    Demo(demo::Args),
    /// Run the kernel on one KernelInput; prints a KernelOutput (exit 0) or a KernelError (exit 2).
    Kernel(kernel::Args),
    /// Print a JSON Schema: input, output, error, trigger or action-message.
    Schema(schema::Args),
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Consume triggers and run one cycle each (ops endpoints on `http.listen`, the console
    /// on `console.listen`). Stops gracefully on SIGTERM or SIGINT.
    Worker,
    /// Serve only the operator console on `console.listen` (writes need
    /// REVENUE_OS_CONSOLE_TOKEN). Stops on SIGTERM or SIGINT.
    Console,
    /// The tenant view for a terminal: constraint history, latest actions with their status,
    /// the watchdog's evaluations, outcomes.
    Report(report::Args),
    /// Publish one trigger with a fresh message_id; `--wait` prints the cycle's result.
    Trigger(trigger::Args),
    /// Capacity benchmark against the local services, in its own database and prefix:
    /// seeds tenants, runs worker processes, publishes triggers, and compares throughput
    /// with pgbench doing the same database work (deploy/bench/cycle.sql).
    Bench(bench::Args),
    /// Dead-lettered triggers: list them, or replay them once their cause is fixed.
    Dlq(dlq::Args),
    /// Apply the database migrations (a no-op when up to date) and sync the metric dictionary.
    /// Run it as the schema's owner. Without --grant-to it prints, on stderr, the GRANTs the
    /// worker's role needs.
    Migrate(migrate::Args),
    /// Print the SQL that gives a role the worker's privileges (run it as the schema owner),
    /// optionally after an idempotent CREATE ROLE (run that as a DBA). Connects to nothing.
    Grants(grants::Args),
    /// Run the watchdog now: evaluate every due action (abort conditions, outcomes), as of
    /// each tenant's newest metric day. Reverts go to the outbox for a worker to publish.
    Watch(watch::Args),
    /// Actions waiting for a person, with the command that approves each.
    Approvals(approvals::Args),
    /// Approve a held action: its message goes out (exit 2 when refused: stale, expired,
    /// superseded, not waiting).
    Approve(approve::Args),
    /// Reject a held action, with the reason.
    Reject(reject::Args),
    /// Per-tenant settings.
    Tenant(tenant::Args),
    /// Load a KernelInput-shaped tenant document into the database, in one transaction.
    /// Exit 2 with a KernelError when the document is invalid (nothing is written).
    Import(import::Args),
    /// Print the KernelInput a cycle would hand the kernel for one tenant.
    Assemble(assemble::Args),
    /// Detected metric deviations (docs/deviations.md), newest day first; `--detect` first
    /// runs detection as of each tenant's newest metric day, `--disable`/`--enable` opt a
    /// tenant out or back in.
    Deviations(deviations::Args),
    /// Bulk, idempotent load of one CSV or NDJSON file of many tenants' rows (docs/ingest.md).
    /// Exit 2 with an INVALID_INPUT document when a row is invalid (nothing is written)
    /// unless --quarantine.
    Ingest(ingest::Args),
    /// Recent loads, newest first.
    Loads(loads::Args),
    /// Throughput and peak memory of `ingest` on a generated metrics file of tenants ×
    /// metrics × days rows, in a database of its own (revenue_os_ingest_bench).
    IngestBench(ingest_bench::Args),
}

/// Runs one subcommand. A database or broker that does not answer is said as which, where,
/// and how to start it.
pub fn run(command: Command) -> Result<Output, Error> {
    dispatch(command).map_err(|e| match Settings::load() {
        Ok(settings) => e.with_service_hint(&settings),
        Err(_) => e,
    })
}

fn dispatch(command: Command) -> Result<Output, Error> {
    match command {
        Command::Operator(a) => operator::run(a),
        Command::Webhook(a) => webhook::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Kernel(a) => kernel::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Config => config::run(),
        Command::Worker => worker::run(),
        Command::Console => console::run(),
        Command::Report(a) => report::run(a),
        Command::Trigger(a) => trigger::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Dlq(a) => dlq::run(a),
        Command::Migrate(a) => migrate::run(a),
        Command::Grants(a) => grants::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Approvals(a) => approvals::run(a),
        Command::Approve(a) => approve::run(a),
        Command::Reject(a) => reject::run(a),
        Command::Tenant(a) => tenant::run(a),
        Command::Import(a) => import::run(a),
        Command::Assemble(a) => assemble::run(a),
        Command::Deviations(a) => deviations::run(a),
        Command::Ingest(a) => ingest::run(a),
        Command::Loads(a) => loads::run(a),
        Command::IngestBench(a) => ingest_bench::run(a),
    }
}

/// What a successful subcommand prints on stdout.
pub enum Output {
    /// Pretty JSON, rendered from the typed value so fields keep the contract's order.
    Json(String),
    Line(String),
    /// The command printed as it went.
    Nothing,
}

fn json<T: serde::Serialize>(value: &T) -> Result<Output, Error> {
    serde_json::to_string_pretty(value)
        .map(Output::Json)
        .map_err(|e| Error::Io(e.into()))
}

/// Settings and the embedded catalog.
fn load() -> Result<(Settings, Catalog), Error> {
    Ok((Settings::load()?, Catalog::embedded()?))
}

fn runtime(f: impl Future<Output = Result<Output, Error>>) -> Result<Output, Error> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

/// A document from a file, or from stdin for `-`.
fn read_input(file: &str) -> Result<Vec<u8>, Error> {
    let read = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    };
    read.map_err(|e| Error::Usage(format!("cannot read {file}: {e}")))
}

fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    parse_timestamp(s).ok_or_else(|| format!("'{s}' is not an RFC 3339 timestamp"))
}

fn date(s: &str) -> Result<NaiveDate, String> {
    parse_date(s).ok_or_else(|| format!("'{s}' is not a YYYY-MM-DD date"))
}

fn window(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<Option<DateRange>, Error> {
    match start.zip(end) {
        None => Ok(None),
        Some((s, e)) => DateRange::new(s, e)
            .map(Some)
            .ok_or_else(|| Error::Usage(format!("--start {s} is after --end {e}"))),
    }
}

fn tenant_not_found(tenant: uuid::Uuid) -> Error {
    Error::Kernel(crate::contract::KernelError::tenant_not_found(tenant))
}

/// Warnings only, for people: a demo's own report is its output.
fn quiet_logs(settings: &Settings) {
    let mut log = settings.log.clone();
    log.format = crate::config::LogFormat::Human;
    log.level = "warn".into();
    crate::telemetry::init(&log);
}

/// Runs a long-lived service with JSON/human logs until SIGTERM or SIGINT.
async fn until_signal<F, Fut>(serve: F) -> Result<Output, Error>
where
    F: FnOnce(Settings, Catalog, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let (settings, catalog) = load()?;
    crate::telemetry::init(&settings.log);
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = serve(settings, catalog, shutdown).await;
    signals.abort();
    result.map(|()| Output::Nothing)
}

/// SIGTERM or SIGINT cancels `token`.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
        _ = token.cancelled() => return,
    }
    token.cancel();
}
