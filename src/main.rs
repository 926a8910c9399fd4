//! `revenue-os`: thin subcommands over the library. Each returns `Result<Output, Error>`;
//! `report` prints it and takes the exit code from `Error::exit_code`, the one table.

mod bench;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use revenue_os::app;
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::{
    DateRange, Levers, Trigger, TriggerMessage, TriggerType, parse_date, parse_timestamp, schema,
};
use revenue_os::error::Error;
use revenue_os::store::{ApprovalOutcome, ApprovalRequest};
use std::io::{Read, Write};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

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
enum TenantAction {
    /// Print a tenant's approval policy; with flags, change it first.
    Policy {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Hold every action matching `<subsystem>:<type>` (`*` for any), e.g. `pricing:*`,
        /// `*:experiment`; repeat the flag for more.
        #[arg(long)]
        require: Vec<String>,
        /// Hold actions that may add more than this spend.
        #[arg(long)]
        max_added_spend: Option<f64>,
        /// Hold budget changes bigger than this percentage.
        #[arg(long)]
        max_budget_step_pct: Option<f64>,
        /// Hold everything during the tenant's first N days.
        #[arg(long)]
        first_days: Option<i32>,
        /// Back to the default: nothing is held.
        #[arg(long)]
        clear: bool,
    },
    /// Print a tenant's watchdog settings; with flags, change them first.
    Watchdog {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// `shadow` records what the watchdog would revert and publishes nothing.
        #[arg(long, value_parser = ["enforce", "shadow"])]
        mode: Option<String>,
        /// Watch actions from `published` (for executors that never report `applied`).
        #[arg(long)]
        watch_published: Option<bool>,
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
        /// Instead: 60 simulated days of a tenant whose metrics respond to applied changes,
        /// through the worker, a stand-in executor and the watchdog on a simulated clock.
        #[arg(long = "loop")]
        closed_loop: bool,
    },
    /// Run the kernel on one KernelInput; prints a KernelOutput (exit 0) or a KernelError (exit 2).
    Kernel {
        /// Input file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        /// Fix the clock (RFC 3339) instead of reading it.
        #[arg(long, value_parser = timestamp)]
        now: Option<DateTime<Utc>>,
        /// Print the reasoning trace to stderr.
        #[arg(long)]
        explain: bool,
        /// The levers' known state (as `assemble --levers-out` writes it); default: none known.
        #[arg(long)]
        levers: Option<String>,
    },
    /// Print a JSON Schema: input, output, error, trigger or action-message.
    Schema {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            schema::Document::ALL.map(|d| d.name())))]
        document: String,
    },
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
    Report {
        #[arg(long)]
        tenant: uuid::Uuid,
    },
    /// Publish one trigger with a fresh message_id; `--wait` prints the cycle's result.
    Trigger {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long = "type", default_value = "manual")]
        kind: TriggerType,
        #[arg(long, default_value = "cli")]
        source: String,
        /// Analysis window start (YYYY-MM-DD); needs --end.
        #[arg(long, requires = "end", value_parser = date)]
        start: Option<chrono::NaiveDate>,
        /// Analysis window end (YYYY-MM-DD); needs --start.
        #[arg(long, requires = "start", value_parser = date)]
        end: Option<chrono::NaiveDate>,
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
    /// Run it as the schema's owner. Without --grant-to it prints, on stderr, the GRANTs the
    /// worker's role needs.
    Migrate {
        /// Also give this role the worker's privileges (creating it when it is missing and
        /// this role may create roles).
        #[arg(long, env = "REVENUE_OS_GRANT_TO")]
        grant_to: Option<String>,
    },
    /// Print the SQL that gives a role the worker's privileges (run it as the schema owner),
    /// optionally after an idempotent CREATE ROLE (run that as a DBA). Connects to nothing.
    Grants {
        #[arg(long, default_value = revenue_os::store::WORKER_ROLE)]
        role: String,
        #[arg(long)]
        create_role: bool,
    },
    /// Detected metric deviations (docs/deviations.md), newest day first; `--detect` first
    /// runs detection as of each tenant's newest metric day, `--disable`/`--enable` opt a
    /// tenant out or back in.
    Deviations {
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// Only days from this one on (YYYY-MM-DD).
        #[arg(long, value_parser = date)]
        since: Option<chrono::NaiveDate>,
        /// Print the detections as JSON (every number that decided each).
        #[arg(long)]
        json: bool,
        #[arg(long)]
        detect: bool,
        #[arg(long, requires = "tenant", conflicts_with = "enable")]
        disable: bool,
        #[arg(long, requires = "tenant")]
        enable: bool,
    },
    /// Run the watchdog now: evaluate every due action (abort conditions, outcomes), as of
    /// each tenant's newest metric day. Reverts go to the outbox for a worker to publish.
    Watch {
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
        /// Print each evaluation's numbers to stderr (and, with --tenant, the stored ones).
        #[arg(long)]
        explain: bool,
    },
    /// Actions waiting for a person, with the command that approves each.
    Approvals {
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
    /// Approve a held action: its message goes out (exit 2 when refused: stale, expired,
    /// superseded, not waiting).
    Approve {
        /// `<cycle_id>:<action_id>`
        action: String,
        #[arg(long)]
        by: String,
        /// The hash of the action as you saw it (`approvals` prints it); default: the action
        /// as printed now.
        #[arg(long)]
        hash: Option<String>,
    },
    /// Reject a held action, with the reason.
    Reject {
        /// `<cycle_id>:<action_id>`
        action: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        hash: Option<String>,
    },
    /// Per-tenant settings.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
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
        #[arg(long, requires = "end", value_parser = date)]
        start: Option<chrono::NaiveDate>,
        /// Window end (YYYY-MM-DD, inclusive).
        #[arg(long, requires = "start", value_parser = date)]
        end: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "manual")]
        trigger_type: TriggerType,
        #[arg(long, default_value = "cli")]
        trigger_source: String,
        /// Fix the clock (RFC 3339): the trigger time and the default window.
        #[arg(long, value_parser = timestamp)]
        now: Option<DateTime<Utc>>,
        /// Also write the levers' known state to this file: with the printed input it
        /// reproduces the cycle offline (`kernel --levers FILE`).
        #[arg(long)]
        levers_out: Option<String>,
    },
}

/// What a successful subcommand prints on stdout.
enum Output {
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

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => report(run(cli)),
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            ExitCode::from(revenue_os::error::EXIT_OK)
        }
        // A usage error is the operator's: exit 1, keeping 2 for contract outcomes.
        Err(e) => report(Err(Error::Usage(e.render().to_string()))),
    }
}

fn run(cli: Cli) -> Result<Output, Error> {
    match cli.command {
        Command::Kernel {
            file,
            now,
            explain,
            levers,
        } => kernel(&file, now, explain, levers.as_deref()),
        Command::Schema { document } => {
            let doc = schema::Document::parse(&document)
                .ok_or_else(|| Error::Usage(format!("unknown schema {document}")))?;
            json(&schema::schema(doc))
        }
        Command::Config => json(&Settings::load()?.redacted()),
        Command::Worker => runtime(worker()),
        Command::Console => runtime(console()),
        Command::Report { tenant } => {
            let (settings, catalog) = load()?;
            runtime(async move {
                let store = app::store(&settings, false).await?;
                let text = revenue_os::console::report::report(&store, &catalog, tenant)
                    .await?
                    .ok_or_else(|| {
                        Error::Kernel(revenue_os::contract::KernelError::tenant_not_found(tenant))
                    })?;
                Ok(Output::Line(text.trim_end().to_owned()))
            })
        }
        Command::Trigger {
            tenant,
            kind,
            source,
            start,
            end,
            wait,
            timeout,
        } => {
            let window = window(start, end)?;
            runtime(trigger(tenant, kind, source, window, wait, timeout))
        }
        Command::Demo {
            closed_loop: true, ..
        } => simulation(),
        Command::Demo { file, .. } => demo(&file),
        Command::Dlq { action } => runtime(dlq(action)),
        Command::Bench {
            tenants,
            triggers,
            workers,
            rate,
            paced_seconds,
            pgbench_clients,
            pgbench_seconds,
        } => {
            let opts = bench::BenchOptions {
                tenants,
                triggers,
                workers,
                paced_rate: rate,
                paced_seconds,
                pgbench_clients,
                pgbench_seconds,
            };
            let (settings, catalog) = load()?;
            runtime(async move {
                let say = |line: &str| eprintln!("{line}");
                json(&bench::run(settings, catalog, &opts, say).await?)
            })
        }
        Command::Migrate { grant_to } => {
            let settings = Settings::load()?;
            runtime(async move {
                let store = app::store(&settings, true).await?;
                let applied = store.migrate().await?;
                match &grant_to {
                    Some(role) => store.grant_worker(role).await?,
                    None => eprint!(
                        "migrate: give the worker's role its privileges by running this as the \
                         schema owner (or `revenue-os migrate --grant-to ROLE`):\n{}",
                        revenue_os::store::worker_grants_sql(revenue_os::store::WORKER_ROLE)?
                    ),
                }
                json(&serde_json::json!({
                    "migrated": true, "applied": applied, "granted_to": grant_to,
                }))
            })
        }
        Command::Grants { role, create_role } => {
            let mut sql = String::new();
            if create_role {
                sql.push_str(&revenue_os::store::worker_role_sql(&role)?);
            }
            sql.push_str(&revenue_os::store::worker_grants_sql(&role)?);
            Ok(Output::Line(sql.trim_end().to_owned()))
        }
        Command::Deviations {
            tenant,
            since,
            json: as_json,
            detect,
            disable,
            enable,
        } => {
            let (settings, catalog) = load()?;
            runtime(async move {
                let store = app::store(&settings, false).await?;
                if let (Some(t), true) = (tenant, disable || enable) {
                    store.set_deviation_enabled(t, enable).await?;
                }
                if detect {
                    let topology = revenue_os::broker::Topology::new(
                        &settings.amqp.prefix,
                        &catalog,
                        settings.amqp.delivery_limit,
                    );
                    let tenants = match tenant {
                        Some(t) => vec![t],
                        None => store.tenant_ids().await?,
                    };
                    let pass = revenue_os::worker::deviation::detect_for(
                        &store,
                        &catalog,
                        &settings.deviation,
                        &topology,
                        &tenants,
                        Utc::now(),
                    )
                    .await?;
                    eprintln!(
                        "detected: {} tenants, {} series assessed, {} deviations recorded, {} triggers queued",
                        pass.tenants, pass.assessed, pass.recorded, pass.triggers
                    );
                }
                let found = store.deviations(tenant, since).await?;
                if as_json {
                    return json(&found);
                }
                let lines: Vec<String> = found
                    .iter()
                    .map(|d| {
                        let r = &d.row;
                        format!(
                            "{} {} {} {}: observed {} expected {} band [{}, {}] k {} {} over {} days{}",
                            r.day,
                            d.tenant_id,
                            r.metric_id,
                            if r.harmful { "HARMFUL" } else { "helpful" },
                            r.observed,
                            r.expected,
                            r.band_lower,
                            r.band_upper,
                            r.k,
                            r.method,
                            r.days_used,
                            d.trigger_message_id
                                .as_deref()
                                .map(|m| format!(", trigger {m}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                Ok(Output::Line(lines.join("\n")))
            })
        }
        Command::Watch { tenant, explain } => {
            let (settings, catalog) = load()?;
            runtime(async move {
                let store = app::store(&settings, false).await?;
                let done = app::watch(&store, &settings, &catalog, tenant).await?;
                if explain {
                    eprint!("{}", explain_watch(&store, &done, tenant).await?);
                }
                let summary: Vec<serde_json::Value> = done
                    .iter()
                    .map(|w| {
                        serde_json::json!({
                            "tenant_id": w.tenant_id, "cycle_id": w.cycle_id,
                            "action_id": w.action_id, "as_of": w.as_of,
                            "verdict": w.decision.evaluation.verdict,
                            "outcome": w.decision.evaluation.outcome,
                            "sentence": w.decision.evaluation.sentence,
                        })
                    })
                    .collect();
                json(&summary)
            })
        }
        Command::Approvals { tenant } => {
            let settings = Settings::load()?;
            runtime(async move {
                let pending = app::store(&settings, false)
                    .await?
                    .pending_approvals(tenant)
                    .await?;
                for p in &pending {
                    eprintln!(
                        "{}:{}  ({})\n  revenue-os approve {}:{} --by NAME --hash {}",
                        p.cycle_id,
                        p.action_id,
                        p.reason.as_deref().unwrap_or(""),
                        p.cycle_id,
                        p.action_id,
                        p.hash
                    );
                }
                json(&pending)
            })
        }
        Command::Approve { action, by, hash } => {
            decide_cli(&action, hash, |hash| ApprovalRequest::Approve { by, hash })
        }
        Command::Reject {
            action,
            by,
            reason,
            hash,
        } => decide_cli(&action, hash, |hash| ApprovalRequest::Reject {
            by,
            hash,
            reason,
        }),
        Command::Tenant {
            action:
                TenantAction::Policy {
                    tenant,
                    require,
                    max_added_spend,
                    max_budget_step_pct,
                    first_days,
                    clear,
                },
        } => {
            let settings = Settings::load()?;
            let edit = app::PolicyEdit {
                require,
                max_added_spend,
                max_budget_step_pct,
                first_days,
                clear,
            };
            runtime(async move {
                let store = app::store(&settings, false).await?;
                let policy = app::edit_policy(&store, tenant, edit).await?;
                json(&serde_json::json!({ "tenant_id": tenant, "approval_policy": policy }))
            })
        }
        Command::Tenant {
            action:
                TenantAction::Watchdog {
                    tenant,
                    mode,
                    watch_published,
                },
        } => {
            let settings = Settings::load()?;
            runtime(async move {
                let store = app::store(&settings, false).await?;
                let shadow = mode.map(|m| m == "shadow");
                let (shadow, published) = store
                    .set_watchdog_settings(tenant, shadow, watch_published)
                    .await?
                    .ok_or_else(|| {
                        Error::Kernel(revenue_os::contract::KernelError::tenant_not_found(tenant))
                    })?;
                json(&serde_json::json!({
                    "tenant_id": tenant,
                    "watchdog": {
                        "mode": if shadow { "shadow" } else { "enforce" },
                        "watch_published": published,
                    }
                }))
            })
        }
        Command::Import { file } => {
            let bytes = read_input(&file)?;
            let (settings, catalog) = load()?;
            runtime(async move { json(&app::import(&settings, &catalog, &bytes).await?) })
        }
        Command::Assemble {
            tenant,
            start,
            end,
            trigger_type,
            trigger_source,
            now,
            levers_out,
        } => {
            let now = now.unwrap_or_else(Utc::now);
            let trigger = Trigger {
                kind: trigger_type,
                source: trigger_source,
                triggered_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let window = window(start, end)?;
            let settings = Settings::load()?;
            runtime(async move {
                let assembled = app::assemble(&settings, tenant, trigger, now, window).await?;
                if let Some(path) = levers_out {
                    let text = serde_json::to_string_pretty(&assembled.levers)
                        .map_err(|e| Error::Io(e.into()))?;
                    std::fs::write(&path, text + "\n")
                        .map_err(|e| Error::Usage(format!("cannot write {path}: {e}")))?;
                }
                json(&assembled.input)
            })
        }
    }
}

/// Prints the result; the exit code comes from the one table in `Error::exit_code`.
fn report(result: Result<Output, Error>) -> ExitCode {
    let printed = match result {
        Ok(Output::Json(s) | Output::Line(s)) => writeln!(std::io::stdout().lock(), "{s}"),
        Ok(Output::Nothing) => Ok(()),
        Err(e) => {
            match e.data() {
                Some(data) => {
                    let _ = writeln!(std::io::stdout().lock(), "{data}");
                }
                None => eprintln!("revenue-os: {e}"),
            }
            return ExitCode::from(e.exit_code());
        }
    };
    match printed {
        Ok(()) => ExitCode::from(revenue_os::error::EXIT_OK),
        Err(e) => report(Err(Error::Io(e))),
    }
}

fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    parse_timestamp(s).ok_or_else(|| format!("'{s}' is not an RFC 3339 timestamp"))
}

fn date(s: &str) -> Result<chrono::NaiveDate, String> {
    parse_date(s).ok_or_else(|| format!("'{s}' is not a YYYY-MM-DD date"))
}

fn window(
    start: Option<chrono::NaiveDate>,
    end: Option<chrono::NaiveDate>,
) -> Result<Option<DateRange>, Error> {
    match start.zip(end) {
        None => Ok(None),
        Some((s, e)) => DateRange::new(s, e)
            .map(Some)
            .ok_or_else(|| Error::Usage(format!("--start {s} is after --end {e}"))),
    }
}

fn demo(file: &str) -> Result<Output, Error> {
    let document = read_input(file)?;
    let (settings, catalog) = load()?;
    quiet_logs(&settings);
    runtime(async move {
        let say = |line: &str| println!("{line}");
        revenue_os::demo::run(settings, catalog, &document, say).await?;
        Ok(Output::Nothing)
    })
}

/// `approve` / `reject`: the decision, bound to the hash given or to the action as printed now.
fn decide_cli(
    target: &str,
    hash: Option<String>,
    request: impl FnOnce(String) -> ApprovalRequest,
) -> Result<Output, Error> {
    let (cycle, action_id) = target
        .split_once(':')
        .and_then(|(c, a)| uuid::Uuid::parse_str(c).ok().map(|c| (c, a.to_owned())))
        .ok_or_else(|| Error::Usage(format!("'{target}' is not <cycle_id>:<action_id>")))?;
    let (settings, catalog) = load()?;
    runtime(async move {
        let store = app::store(&settings, false).await?;
        let hash = match hash {
            Some(h) => h,
            None => {
                let pending = store.pending_approvals(None).await?;
                let shown = pending
                    .iter()
                    .find(|p| p.cycle_id == cycle && p.action_id == action_id);
                match shown {
                    Some(p) => {
                        eprintln!(
                            "{}",
                            serde_json::to_string_pretty(&p.action).unwrap_or_default()
                        );
                        p.hash.clone()
                    }
                    None => String::new(),
                }
            }
        };
        let outcome = app::decide(
            &store,
            &settings,
            &catalog,
            cycle,
            &action_id,
            request(hash),
        )
        .await?;
        let body = |o: &str| serde_json::json!({ "outcome": o, "cycle_id": cycle, "action_id": action_id });
        match outcome {
            ApprovalOutcome::Approved { outbox } => json(&serde_json::json!({
                "outcome": "approved", "cycle_id": cycle, "action_id": action_id,
                "message_id": outbox.message.message_id,
            })),
            ApprovalOutcome::Rejected => json(&body("rejected")),
            ApprovalOutcome::StaleHash { current } => {
                let mut b = body("refused: the action changed since it was shown");
                b["current_hash"] = serde_json::json!(current);
                Err(Error::Refused { body: b })
            }
            ApprovalOutcome::Expired => Err(Error::Refused {
                body: body("expired"),
            }),
            ApprovalOutcome::Superseded => Err(Error::Refused {
                body: body("superseded by a newer cycle"),
            }),
            ApprovalOutcome::NotPending { status } => Err(Error::Refused {
                body: body(&format!("not waiting for approval: {status}")),
            }),
            ApprovalOutcome::NotFound => Err(Error::Refused {
                body: body("no such action"),
            }),
        }
    })
}

/// Warnings only, for people: a demo's own report is its output.
fn quiet_logs(settings: &Settings) {
    let mut log = settings.log.clone();
    log.format = revenue_os::config::LogFormat::Human;
    log.level = "warn".into();
    revenue_os::telemetry::init(&log);
}

fn simulation() -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    quiet_logs(&settings);
    runtime(async move {
        revenue_os::demo::simulation::run(settings, catalog, |line| println!("{line}")).await?;
        Ok(Output::Nothing)
    })
}

async fn dlq(action: DlqAction) -> Result<Output, Error> {
    use revenue_os::broker::{self, Topology, dlq};
    let (settings, catalog) = load()?;
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let name = broker::connection_name(&topology.prefix, "dlq");
    let conn = broker::connect(&settings.amqp, &name).await?;
    let out = match action {
        DlqAction::List { limit } => dlq::list(&conn, &topology, limit)
            .await
            .map_err(Error::from)
            .and_then(|v| json(&v)),
        DlqAction::Replay { limit } => dlq::replay(&conn, &topology, limit)
            .await
            .map_err(Error::from)
            .and_then(|r| json(&r)),
    };
    let _ = conn.close(200, "bye".into()).await;
    out
}

/// Settings and the embedded catalog.
fn load() -> Result<(Settings, Catalog), Error> {
    Ok((Settings::load()?, Catalog::embedded()?))
}

fn runtime(f: impl std::future::Future<Output = Result<Output, Error>>) -> Result<Output, Error> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

async fn worker() -> Result<Output, Error> {
    until_signal(app::serve).await
}

async fn console() -> Result<Output, Error> {
    until_signal(app::serve_console).await
}

/// Runs a long-lived service with JSON/human logs until SIGTERM or SIGINT.
async fn until_signal<F, Fut>(serve: F) -> Result<Output, Error>
where
    F: FnOnce(Settings, Catalog, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let (settings, catalog) = load()?;
    revenue_os::telemetry::init(&settings.log);
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

async fn trigger(
    tenant: uuid::Uuid,
    kind: TriggerType,
    source: String,
    window: Option<DateRange>,
    wait: bool,
    timeout: u64,
) -> Result<Output, Error> {
    use revenue_os::broker::{Topology, TriggerClient};
    let (settings, catalog) = load()?;
    let msg = TriggerMessage {
        tenant_id: tenant.to_string(),
        trigger: Trigger {
            kind,
            source,
            triggered_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        analysis_window: window.map(|w| w.to_window()),
    };
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let client = TriggerClient::connect(&settings.amqp, topology).await?;
    let message_id = uuid::Uuid::new_v4().to_string();
    let out = if wait {
        let timeout = std::time::Duration::from_secs(timeout);
        match client.send_and_wait(&msg, &message_id, timeout).await {
            Ok(reply) => {
                eprintln!("message_id {message_id}: {}", reply.status);
                if reply.status == "completed" {
                    json(&reply.body)
                } else {
                    Err(Error::CycleFailed {
                        status: reply.status,
                        body: reply.body,
                    })
                }
            }
            Err(e) => Err(Error::Run(format!("message_id {message_id}: {e}"))),
        }
    } else {
        client
            .send(&msg, &message_id)
            .await
            .map(|()| Output::Line(message_id))
            .map_err(Error::from)
    };
    client.close().await;
    out
}

fn kernel(
    file: &str,
    now: Option<DateTime<Utc>>,
    explain: bool,
    levers: Option<&str>,
) -> Result<Output, Error> {
    let now = now.unwrap_or_else(Utc::now);
    let bytes = read_input(file)?;
    let levers: Levers = match levers {
        None => Levers::default(),
        Some(path) => serde_json::from_slice(&read_input(path)?)
            .map_err(|e| Error::Usage(format!("{path} is not a levers document: {e}")))?,
    };
    let catalog = Catalog::embedded()?;
    let cycle_id = uuid::Uuid::new_v4();
    let result = if explain {
        let (result, trace) =
            revenue_os::kernel::run_explained(&bytes, &levers, &catalog, now, cycle_id);
        eprint!("{trace}");
        result
    } else {
        revenue_os::kernel::run(&bytes, &levers, &catalog, now, cycle_id)
    };
    json(&result?)
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

/// The `--explain` text of a sweep: each evaluation's sentence and its day-by-day numbers;
/// with a tenant, also the ones stored before.
async fn explain_watch(
    store: &revenue_os::store::Store,
    done: &[revenue_os::store::Watched],
    tenant: Option<uuid::Uuid>,
) -> Result<String, Error> {
    use revenue_os::watchdog::explain;
    let mut out = String::new();
    for w in done {
        let e = &w.decision.evaluation;
        let head = format!(
            "{} {} as of {}: {}",
            w.cycle_id, w.action_id, w.as_of, e.verdict
        );
        out += &explain(&head, &e.sentence, &e.numbers);
    }
    if let Some(t) = tenant {
        // The decisions (not the days that only kept watching), newest first.
        let stored: Vec<_> = store
            .evaluations(t, 1000)
            .await?
            .into_iter()
            .filter(|e| e.verdict != "watching")
            .collect();
        if !stored.is_empty() {
            out += &format!("stored decisions of tenant {t}, newest first:\n");
        }
        for e in &stored {
            let head = format!(
                "{} {} as of {}: {} ({})",
                e.cycle_id, e.action_id, e.as_of, e.verdict, e.mode
            );
            out += &explain(&head, &e.sentence, &e.numbers);
        }
    }
    Ok(out)
}
