//! `revenue-os`: thin subcommands over the library.

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use revenue_os::catalog::Catalog;
use revenue_os::config::Settings;
use revenue_os::contract::{AnalysisWindow, Trigger, TriggerType, schema};
use revenue_os::store::{self, Store, StoreError};
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "revenue-os",
    version,
    about = "Revenue OS: the revenue decision kernel as a queue-driven worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum DlqAction {
    /// Print up to --limit dead-lettered triggers with their reason; they stay queued.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Republish up to --limit dead-lettered triggers to the triggers exchange, same message_id.
    Replay {
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The walkthrough: create and migrate the database, import the example tenant, run a
    /// worker, publish a trigger, and print every action as the executors receive it.
    Demo {
        /// Tenant document to import.
        #[arg(default_value = "tests/fixtures/valid/demand_bound.json")]
        file: String,
    },
    /// Run the kernel on one KernelInput; prints a KernelOutput (exit 0) or a KernelError (exit 2).
    Kernel {
        /// Input file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        /// Fix the clock (RFC 3339) instead of reading it.
        #[arg(long)]
        now: Option<String>,
        /// Print the reasoning trace to stderr.
        #[arg(long)]
        explain: bool,
    },
    /// Print a JSON Schema: input, output, error, trigger or action-message.
    Schema {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            schema::Document::ALL.map(|d| d.name())))]
        document: String,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Consume triggers and run one cycle each (ops endpoints on `http.listen`). Stops
    /// gracefully on SIGTERM or SIGINT.
    Worker,
    /// Publish one trigger with a fresh message_id; `--wait` prints the cycle's result.
    Trigger {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long = "type", default_value = "manual")]
        kind: String,
        #[arg(long, default_value = "cli")]
        source: String,
        /// Analysis window start (YYYY-MM-DD); needs --end.
        #[arg(long, requires = "end")]
        start: Option<String>,
        /// Analysis window end (YYYY-MM-DD); needs --start.
        #[arg(long, requires = "start")]
        end: Option<String>,
        /// Wait for the result through reply_to and print it (exit 2 if the cycle failed).
        #[arg(long)]
        wait: bool,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Capacity benchmark against the local services, in its own database and prefix:
    /// seeds tenants, runs worker processes, publishes triggers, and compares throughput
    /// with pgbench doing the same database work (deploy/bench/cycle.sql).
    Bench {
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Triggers published at once (saturation phase).
        #[arg(long, default_value_t = 10_000)]
        triggers: usize,
        /// Worker processes.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Triggers per second in the paced (latency) phase.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        paced_seconds: u32,
        #[arg(long, default_value_t = 8)]
        pgbench_clients: u32,
        #[arg(long, default_value_t = 20)]
        pgbench_seconds: u32,
    },
    /// Dead-lettered triggers: list them, or replay them once their cause is fixed.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Apply the database migrations (a no-op when up to date) and sync the metric dictionary.
    Migrate,
    /// Load a KernelInput-shaped tenant document into the database, in one transaction.
    /// Exit 2 with a KernelError when the document is invalid (nothing is written).
    Import {
        /// Document file, or `-` for stdin.
        file: String,
    },
    /// Print the KernelInput a cycle would hand the kernel for one tenant.
    Assemble {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Window start (YYYY-MM-DD); default: the 30 days ending yesterday (UTC).
        #[arg(long, requires = "end")]
        start: Option<String>,
        /// Window end (YYYY-MM-DD, inclusive).
        #[arg(long, requires = "start")]
        end: Option<String>,
        #[arg(long, default_value = "manual")]
        trigger_type: String,
        #[arg(long, default_value = "cli")]
        trigger_source: String,
        /// Fix the clock (RFC 3339): the trigger time and the default window.
        #[arg(long)]
        now: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Kernel { file, now, explain } => kernel(&file, now.as_deref(), explain),
        Command::Schema { document } => {
            let Some(doc) = schema::Document::parse(&document) else {
                return fail(format!("unknown schema {document}"));
            };
            print_json(&schema::schema(doc))
        }
        Command::Config => match Settings::load() {
            Ok(s) => print_json(&s.redacted()),
            Err(e) => fail(e),
        },
        Command::Worker => runtime(worker()),
        Command::Trigger {
            tenant,
            kind,
            source,
            start,
            end,
            wait,
            timeout,
        } => runtime(trigger(tenant, kind, source, start.zip(end), wait, timeout)),
        Command::Demo { file } => demo(&file),
        Command::Dlq { action } => runtime(dlq(action)),
        Command::Bench {
            tenants,
            triggers,
            workers,
            rate,
            paced_seconds,
            pgbench_clients,
            pgbench_seconds,
        } => bench(revenue_os::bench::BenchOptions {
            tenants,
            triggers,
            workers,
            paced_rate: rate,
            paced_seconds,
            pgbench_clients,
            pgbench_seconds,
        }),
        Command::Migrate => with_store(true, |store| async move {
            store.migrate().await?;
            Ok(serde_json::json!({ "migrated": true }))
        }),
        Command::Import { file } => import(&file),
        Command::Assemble {
            tenant,
            start,
            end,
            trigger_type,
            trigger_source,
            now,
        } => {
            let now = match parse_now(now.as_deref()) {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            let Some(kind) = TriggerType::parse(&trigger_type) else {
                return fail(format!(
                    "--trigger-type '{trigger_type}' is not a trigger type"
                ));
            };
            let trigger = Trigger {
                kind,
                source: trigger_source,
                triggered_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let window = match (start, end) {
                (Some(start_date), Some(end_date)) => AnalysisWindow {
                    start_date,
                    end_date,
                },
                _ => store::default_window(now),
            };
            with_store(false, |store| async move {
                store.assemble(tenant, &trigger, &window).await
            })
        }
    }
}

fn parse_now(now: Option<&str>) -> Result<DateTime<Utc>, String> {
    match now {
        None => Ok(Utc::now()),
        Some(s) => revenue_os::contract::parse_timestamp(s)
            .ok_or_else(|| format!("--now '{s}' is not an RFC 3339 timestamp")),
    }
}

fn import(file: &str) -> ExitCode {
    let (bytes, catalog) = match read_document(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let input = match revenue_os::contract::decode_input(&bytes) {
        Ok(i) => i,
        Err(err) => {
            let _ = print_json(&err);
            return ExitCode::from(2);
        }
    };
    with_store(false, |store| async move {
        store.import(&input, &catalog).await?;
        Ok(serde_json::json!({
            "imported": input.tenant_id,
            "metrics": input.metrics.len(),
            "revenue_events": input.revenue_events.len(),
            "campaigns": input.campaigns.len(),
            "opportunities": input.opportunities.len(),
            "action_results": input.recent_action_results.as_ref().map_or(0, Vec::len),
        }))
    })
}

/// Connects with the configured settings (creating the database first when `create`), runs
/// `f`, prints its result. A contract error (StoreError::Kernel) is data: stdout, exit 2.
fn with_store<F, Fut, T>(create: bool, f: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
    T: serde::Serialize,
{
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let result = rt.block_on(async {
        if create {
            Store::create_database_if_missing(&settings.database).await?;
        }
        let store = Store::connect(&settings.database).await?;
        f(store).await
    });
    match result {
        Ok(v) => print_json(&v),
        Err(StoreError::Kernel(err)) => {
            let _ = print_json(&err);
            ExitCode::from(2)
        }
        Err(e) => fail(e),
    }
}

fn demo(file: &str) -> ExitCode {
    let document = match read_input(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {file}: {e}")),
    };
    let (settings, catalog) = match load() {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Quiet by default: the demo's own report is the output.
    let mut log = settings.log.clone();
    log.format = revenue_os::config::LogFormat::Human;
    log.level = "warn".into();
    revenue_os::telemetry::init(&log);
    runtime(async move {
        let say = |line: &str| println!("{line}");
        match revenue_os::demo::run(settings, catalog, &document, say).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
}

fn bench(opts: revenue_os::bench::BenchOptions) -> ExitCode {
    let (settings, catalog) = match load() {
        Ok(x) => x,
        Err(code) => return code,
    };
    runtime(async move {
        let say = |line: &str| eprintln!("{line}");
        match revenue_os::bench::run(settings, catalog, &opts, say).await {
            Ok(report) => print_json(&report),
            Err(e) => fail(e),
        }
    })
}

async fn dlq(action: DlqAction) -> ExitCode {
    use revenue_os::broker::{self, Topology, dlq};
    let (settings, catalog) = match load() {
        Ok(x) => x,
        Err(code) => return code,
    };
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let name = broker::connection_name(&topology.prefix, "dlq");
    let conn = match broker::connect(&settings.amqp, &name).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let code = match action {
        DlqAction::List { limit } => match dlq::list(&conn, &topology, limit).await {
            Ok(v) => print_json(&v),
            Err(e) => fail(e),
        },
        DlqAction::Replay { limit } => match dlq::replay(&conn, &topology, limit).await {
            Ok(r) => print_json(&r),
            Err(e) => fail(e),
        },
    };
    let _ = conn.close(200, "bye".into()).await;
    code
}

/// Settings and the embedded catalog, or the exit code of the operator error.
fn load() -> Result<(Settings, Catalog), ExitCode> {
    let settings = Settings::load().map_err(fail)?;
    let catalog = Catalog::embedded().map_err(fail)?;
    Ok((settings, catalog))
}

fn runtime(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => fail(e),
    }
}

async fn worker() -> ExitCode {
    let (settings, catalog) = match load() {
        Ok(x) => x,
        Err(code) => return code,
    };
    revenue_os::telemetry::init(&settings.log);
    let shutdown = tokio_util::sync::CancellationToken::new();
    match revenue_os::worker::service::serve(settings, catalog, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn trigger(
    tenant: uuid::Uuid,
    kind: String,
    source: String,
    window: Option<(String, String)>,
    wait: bool,
    timeout: u64,
) -> ExitCode {
    use revenue_os::broker::{Topology, TriggerClient};
    use revenue_os::contract::{AnalysisWindow, Trigger, TriggerMessage, TriggerType};
    let Some(kind) = TriggerType::parse(&kind) else {
        return fail(format!("--type '{kind}' is not a trigger type"));
    };
    let (settings, catalog) = match load() {
        Ok(x) => x,
        Err(code) => return code,
    };
    let msg = TriggerMessage {
        tenant_id: tenant.to_string(),
        trigger: Trigger {
            kind,
            source,
            triggered_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        analysis_window: window.map(|(start_date, end_date)| AnalysisWindow {
            start_date,
            end_date,
        }),
    };
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let client = match TriggerClient::connect(&settings.amqp, topology).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let code = if wait {
        let timeout = std::time::Duration::from_secs(timeout);
        match client.send_and_wait(&msg, &message_id, timeout).await {
            Ok(reply) => {
                eprintln!("message_id {message_id}: {}", reply.status);
                let _ = print_json(&reply.body);
                if reply.status == "completed" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Err(e) => fail(format!("message_id {message_id}: {e}")),
        }
    } else {
        match client.send(&msg, &message_id).await {
            Ok(()) => {
                println!("{message_id}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        }
    };
    client.close().await;
    code
}

fn kernel(file: &str, now: Option<&str>, explain: bool) -> ExitCode {
    let now = match parse_now(now) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let (bytes, catalog) = match read_document(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let cycle_id = uuid::Uuid::new_v4();
    let result = if explain {
        let (result, trace) = revenue_os::kernel::run_explained(&bytes, &catalog, now, cycle_id);
        eprint!("{trace}");
        result
    } else {
        revenue_os::kernel::run(&bytes, &catalog, now, cycle_id)
    };
    match result {
        Ok(out) => print_json(&out),
        Err(err) => {
            let _ = print_json(&err);
            ExitCode::from(2)
        }
    }
}

/// A document to read (file or `-`) and the catalog, or the exit code of the operator error.
fn read_document(file: &str) -> Result<(Vec<u8>, Catalog), ExitCode> {
    let bytes = read_input(file).map_err(|e| fail(format!("cannot read {file}: {e}")))?;
    let catalog = Catalog::embedded().map_err(fail)?;
    Ok((bytes, catalog))
}

fn read_input(file: &str) -> std::io::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(file)
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Operator errors (bad flags, unreadable file) go to stderr with exit 1; a KernelError is data
/// and goes to stdout with exit 2.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("revenue-os: {e}");
    ExitCode::from(1)
}
