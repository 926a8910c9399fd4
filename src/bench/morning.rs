//! `revenue-os bench --morning`: one morning of N tenants, end to end, the way a user runs
//! it. Untimed, it seeds N tenants' history through the loader and one applied, watched
//! cycle per tenant. Then it times the morning through the worker's real path:
//!
//! 1. **load**: yesterday's revenue events, today's campaign and opportunity snapshots, and
//!    yesterday's metrics with `--trigger`, through `ingest` (as the worker's role);
//! 2. **watch**: the load follow-up's watchdog over every watched action;
//! 3. **detect**: deviation detection over the loaded tenants;
//! 4. **decide**: one cycle per tenant (a deviation's or the load's scheduled trigger), to the
//!    broker's confirm of its last action.
//!
//! The phases are read back from what the worker recorded (evaluation times, the follow-up's
//! end, outbox and confirm times), so they are the product's own timings, and they may
//! overlap: deviation cycles start while detection goes on. Then a paced phase at a steady
//! rate with a stand-in executor reporting back (the results consumer busy) and the watchdog
//! on; then the ceilings: pgbench running one cycle's statements (deploy/bench/cycle.sql) as
//! the worker's role, and the database's raw COPY rate.

use super::cpu::{CpuPer, Sampler};
use super::workers::Workers;
use super::{Broker, Phase, TENANT_TEMPLATE, pace, pgbench_with, tenant_id};
use crate::config::Settings;
use crate::contract::catalog::Catalog;
use crate::contract::{Checked, Levers, check_input, decode_input};
use crate::error::Error;
use crate::ingest::{Format, Kind, Limits};
use crate::store::{
    MorningFacts, SeedAction, Store, WORKER_ROLE, database_name, url_as, url_with_database,
};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::dataset::{Dataset, Part};

#[derive(Debug, Clone)]
pub struct MorningOptions {
    pub tenants: usize,
    pub days: u32,
    pub actions_per_tenant: usize,
    pub workers: usize,
    pub paced_rate: u32,
    pub paced_seconds: u32,
    pub pgbench_clients: u32,
    pub pgbench_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub kind: String,
    pub rows: i64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// One phase of the morning: when it started and ended, in seconds from the first load's
/// start, and how much it did.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub from_s: f64,
    pub to_s: f64,
    pub seconds: f64,
    pub count: i64,
    pub per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub load: Span,
    pub load_files: Vec<Load>,
    /// `count`: watchdog evaluations of the new day.
    pub watch: Span,
    /// `count`: deviations found on the new day.
    pub detect: Span,
    /// `count`: cycles completed.
    pub decide: Span,
}

/// What must hold after the morning: every number here is 0 when nothing was lost.
#[derive(Debug, Clone, Serialize)]
pub struct Lost {
    pub tenants_without_cycle: i64,
    pub tenants_with_two_cycles: i64,
    pub actions_unconfirmed: i64,
    pub outbox_pending: i64,
    pub watched_actions_unevaluated: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// pgbench running one cycle's statements per transaction, as the worker's role.
    pub pgbench_cycles_per_second: Option<f64>,
    /// The decide phase's cycles/s over pgbench's.
    pub decide_ratio: Option<f64>,
    /// Binary COPY of metric rows into a temporary table: the loader's floor.
    pub copy_rows_per_second: f64,
    /// The CPU of one pgbench transaction, by process (`postgres_ms` is the database's work).
    pub pgbench_cpu_ms_per_transaction: Option<CpuPer>,
    /// PostgreSQL's CPU a pgbench transaction over its CPU a decided cycle: the ceiling
    /// compared in the database's work alone, without the broker and the workers that share
    /// this host's cores.
    pub postgres_cpu_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MorningReport {
    pub tenants: usize,
    pub days: u32,
    pub actions_per_tenant: usize,
    pub workers: usize,
    pub concurrency: u16,
    pub seed_seconds: f64,
    pub seed_rows: i64,
    pub phases: Phases,
    /// From the first load's start to the last action's confirm.
    pub end_to_end_seconds: f64,
    /// The CPU of one decided cycle over the decide phase, by process: what a deployment is
    /// sized from, and steadier than cycles/s on a shared host.
    pub decide_cpu_ms_per_cycle: Option<CpuPer>,
    pub cycles: i64,
    pub actions_published: i64,
    pub lost: Lost,
    pub ceiling: Ceiling,
    /// After the morning: a steady rate with the watchdog and the results consumer running.
    pub paced: Phase,
    /// Actions still waiting for their executor's reports when the paced phase started: the
    /// results consumer's backlog it competes with.
    pub paced_reports_backlog: i64,
    /// The same when it ended (its own cycles' actions included): with
    /// `paced_reports_backlog`, how far the results consumer got while cycles had priority
    /// (`worker.report_turn_ms`).
    pub paced_reports_backlog_after: i64,
    pub worker_peak_rss_mib: Vec<f64>,
    /// The workers' peak RSS so far, read when the first cycle was counted (load, watch and
    /// most of detection behind), when the last action was confirmed, and at the end.
    pub worker_peak_rss_mib_by_phase: BTreeMap<&'static str, Vec<f64>>,
    pub table_bytes_before: BTreeMap<String, i64>,
    pub table_bytes_after: BTreeMap<String, i64>,
    /// The PostgreSQL settings the figures depend on (`autovacuum`, `shared_buffers`, ...).
    pub server: BTreeMap<String, String>,
    pub machine: Machine,
}

/// The machine's single-thread speed before seeding and after the workers stopped
/// (`kernel_decides_per_second`).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub kernel_decides_per_second_before: f64,
    pub kernel_decides_per_second_after: f64,
}

/// Loads one generated file through `ingest`'s own path; its rows and seconds.
async fn ingest(
    store: &Store,
    catalog: &Catalog,
    data: &Dataset,
    kind: Kind,
    part: Part,
    load_id: &str,
    trigger: bool,
) -> Result<Load, Error> {
    let format = match kind {
        Kind::Metrics => Format::Csv,
        _ => Format::Ndjson,
    };
    let opts = crate::app::ingest::IngestOptions {
        kind,
        format,
        source: "bench".into(),
        load_id: Some(load_id.to_owned()),
        snapshot: part == Part::Morning && kind.spec().snapshot,
        quarantine: false,
        trigger,
        limits: Limits::default(),
    };
    let reader = std::io::BufReader::with_capacity(1 << 16, data.file(kind, part));
    let started = Instant::now();
    let (report, _) = crate::app::ingest::load(store, catalog, reader, &opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Load {
        kind: kind.as_str().to_owned(),
        rows: report.rows,
        seconds,
        rows_per_second: report.rows as f64 / seconds.max(1e-9),
    })
}

/// The template tenant checked, and the morning after its last day.
fn template_checked(catalog: &Catalog) -> Result<(Checked, DateTime<Utc>), Error> {
    let input = decode_input(TENANT_TEMPLATE.as_bytes())
        .map_err(|e| Error::Run(format!("tenant template: {e}")))?;
    let end = NaiveDate::parse_from_str(&input.analysis_window.end_date, "%Y-%m-%d")
        .map_err(|e| Error::Run(format!("tenant template window: {e}")))?;
    let now = end
        .succ_opt()
        .and_then(|d| d.and_hms_opt(6, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| Error::Run("tenant template window".into()))?;
    let checked = check_input(input, catalog, now)
        .map_err(|e| Error::Run(format!("tenant template: {}", e.message)))?;
    Ok((checked, now))
}

/// How fast one thread of pure arithmetic ran on this machine just now: the kernel deciding
/// the template tenant again and again for `seconds`. On the shared two-core host the same
/// build's decide rate moved by a quarter or more from one hour to the next
/// (docs/capacity.md). The probe sees only the processor's part of that: a slow run whose
/// probes are fast was slowed by memory, the disk or the page cache.
fn kernel_decides_per_second(catalog: &Catalog, seconds: f64) -> Result<f64, Error> {
    let (checked, now) = template_checked(catalog)?;
    let levers = Levers::default();
    let started = Instant::now();
    let mut n = 0u64;
    while n == 0 || started.elapsed().as_secs_f64() < seconds {
        let out = crate::kernel::decide(&checked, &levers, catalog, now, uuid::Uuid::nil());
        std::hint::black_box(out)
            .map_err(|e| Error::Run(format!("tenant template decides nothing: {}", e.message)))?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `kernel_decides_per_second` off the runtime's threads, said as well as returned.
async fn probe(catalog: &Catalog, say: &mut impl FnMut(&str)) -> Result<f64, Error> {
    let catalog = catalog.clone();
    let rate =
        tokio::task::spawn_blocking(move || kernel_decides_per_second(&catalog, PROBE_SECONDS))
            .await
            .unwrap_or_else(|e| Err(Error::Run(e.to_string())))?;
    say(&format!(
        "machine: the kernel decides {rate:.0} times a second on one thread"
    ));
    Ok(rate)
}

/// Long enough for a steady rate, short beside a morning.
const PROBE_SECONDS: f64 = 2.0;

/// A real cycle's actions for the template tenant, repeated (with numbered ids) up to `n`.
fn seed_actions(
    catalog: &Catalog,
    n: usize,
) -> Result<(Vec<SeedAction>, serde_json::Value), Error> {
    let (checked, now) = template_checked(catalog)?;
    let out = crate::kernel::decide(
        &checked,
        &Levers::default(),
        catalog,
        now,
        uuid::Uuid::nil(),
    )
    .map_err(|e| Error::Run(format!("tenant template decides nothing: {}", e.message)))?;
    if out.actions.is_empty() {
        return Err(Error::Run("tenant template decides no action".into()));
    }
    let mut actions = Vec::with_capacity(n);
    for i in 0..n {
        let a = &out.actions[i % out.actions.len()];
        let round = i / out.actions.len();
        let mut a = a.clone();
        if round > 0 {
            a.action_id = format!("{}.{round}", a.action_id);
        }
        actions.push(SeedAction {
            action_id: a.action_id.clone(),
            priority: i16::from(a.priority),
            owner: a.owner_subsystem.as_str().to_owned(),
            kind: a.kind.as_str().to_owned(),
            target_metric: a.target_metric.clone(),
            body: serde_json::json!(a),
        });
    }
    Ok((actions, serde_json::json!(out)))
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

fn span(t0: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>, count: i64) -> Span {
    let to = to.max(from);
    let seconds = secs(from, to);
    Span {
        from_s: secs(t0, from),
        to_s: secs(t0, to),
        seconds,
        count,
        per_second: if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        },
    }
}

/// The bench's own database (the configured one's name + `_morning`: it never touches a real
/// tenant), migrated, with the worker's role granted; the owner's store (a superuser's: it
/// seeds what only the worker writes) and the worker role's.
async fn prepare(settings: &Settings) -> Result<(Store, Store, String), Error> {
    let base = database_name(&settings.database.url).unwrap_or_else(|| "revenue_os".into());
    let mut owner = settings.database.clone();
    owner.url = url_with_database(&settings.database.url, &format!("{base}_morning"));
    Store::drop_database(&owner).await?;
    Store::create_database_if_missing(&owner).await?;
    let owner_store = Store::connect(&owner).await?;
    owner_store.migrate().await?;
    owner_store.grant_worker(WORKER_ROLE).await?;
    let mut worker = owner.clone();
    worker.url = url_as(&owner.url, WORKER_ROLE);
    worker.pool_size = worker.pool_size.max(8);
    let store = Store::connect(&worker).await?;
    Ok((owner_store, store, worker.url))
}

/// Seeds the history through the loader and one applied cycle per tenant; rows loaded.
async fn seed(
    owner: &Store,
    store: &Store,
    catalog: &Catalog,
    data: &Dataset,
    opts: &MorningOptions,
    say: &mut impl FnMut(&str),
) -> Result<i64, Error> {
    let mut rows = 0;
    for kind in [
        Kind::Tenants,
        Kind::Campaigns,
        Kind::Opportunities,
        Kind::RevenueEvents,
        Kind::Metrics,
    ] {
        let l = ingest(
            store,
            catalog,
            data,
            kind,
            Part::History,
            &format!("seed-{kind}"),
            false,
        )
        .await?;
        say(&format!(
            "seeded {}: {} rows in {:.1} s ({:.0} rows/s)",
            l.kind, l.rows, l.seconds, l.rows_per_second
        ));
        rows += l.rows;
    }
    // The history is not the morning: no worker follows these loads up.
    owner.bench_settle_loads().await?;
    let (actions, output) = seed_actions(catalog, opts.actions_per_tenant)?;
    // A steady state: the cycle ran three days before the loaded day and its actions were
    // applied that noon, so their first full day (two days before it) is in the data and was
    // watched yesterday morning; the loaded day is due. Applied any later, this morning would
    // have no full day of the change to check (V24).
    let cycle_day = data.yesterday - Days::days(2);
    let midnight = cycle_day.and_time(chrono::NaiveTime::MIN).and_utc();
    let (executed_at, applied_at) = (midnight + Days::hours(6), midnight + Days::hours(12));
    let window = (
        cycle_day - Days::days(i64::from(data.days)),
        cycle_day - Days::days(1),
    );
    let watched_as_of = data.yesterday - Days::days(1);
    let ids: Vec<uuid::Uuid> = (1..=opts.tenants)
        .filter_map(|i| tenant_id(i).parse().ok())
        .collect();
    for chunk in ids.chunks(2000) {
        owner
            .bench_seed_applied(
                chunk,
                &actions,
                &output,
                window,
                executed_at,
                applied_at,
                watched_as_of,
            )
            .await?;
    }
    say(&format!(
        "seeded {} applied actions per tenant, watched up to {}",
        actions.len(),
        watched_as_of
    ));
    owner.bench_analyze().await?;
    Ok(rows)
}

/// The morning `settle` waits for: the metrics load whose follow-up queues its triggers, the
/// metric day it loaded, when it began, and how many tenants it must decide.
#[derive(Clone, Copy)]
struct Morning<'a> {
    load_id: &'a str,
    as_of: NaiveDate,
    since: DateTime<Utc>,
    tenants: usize,
}

/// Waits for the morning to finish: every tenant decided, every action confirmed. Counting
/// the morning's cycles reads all of them (about a second of the database's time at 100,000
/// tenants, every poll), so the poll reads only what is still moving: triggers queued and
/// messages unconfirmed. It counts the cycles only when both are none and the follow-up is
/// done. A poll that fails (a statement timeout on a loaded server) is said and tried
/// again: the morning goes on without the bench watching it.
async fn settle(
    owner: &Store,
    broker: &Broker,
    workers: &Workers,
    morning: &Morning<'_>,
    say: &mut impl FnMut(&str),
) -> Result<(MorningFacts, Vec<f64>), Error> {
    let Morning {
        load_id,
        as_of,
        since,
        tenants,
    } = *morning;
    let limit = Duration::from_secs(1800 + tenants as u64 / 20);
    let deadline = Instant::now() + limit;
    let mut said = Instant::now();
    let mut last = (0, 0);
    let mut rss_at_first_cycle = None;
    loop {
        let polled = async {
            if rss_at_first_cycle.is_none() && owner.bench_any_cycle_since(since).await? {
                rss_at_first_cycle = Some(workers.peak_rss_mib());
            }
            let queued = broker.triggers_waiting().await?;
            let (unconfirmed, followed_up) = owner.bench_morning_backlog(load_id).await?;
            last = (queued, unconfirmed);
            if !followed_up || queued > 0 || unconfirmed > 0 {
                return Ok::<_, Error>(false);
            }
            Ok(owner.bench_morning_cycles(load_id, since).await? >= tenants as i64)
        };
        match polled.await {
            Ok(true) => {
                let facts = owner.bench_morning(load_id, as_of, since).await?;
                return Ok((facts, rss_at_first_cycle.unwrap_or_default()));
            }
            Ok(false) => {}
            Err(Error::Store(e)) if e.is_retryable() => {
                say(&format!("  progress not read ({e}); again"));
            }
            Err(Error::Broker(e)) if e.is_retryable() => {
                say(&format!("  triggers queued not read ({e}); again"));
            }
            Err(e) => return Err(e),
        }
        let (queued, unconfirmed) = last;
        if Instant::now() > deadline {
            let cycles = owner
                .bench_morning_cycles(load_id, since)
                .await
                .map_or_else(|_| "an unknown number".to_owned(), |n| n.to_string());
            return Err(Error::Run(format!(
                "the morning did not finish in {} s: {cycles} of {tenants} cycles, \
                 {queued} triggers queued, {unconfirmed} messages unconfirmed",
                limit.as_secs(),
            )));
        }
        if said.elapsed() > Duration::from_secs(10) {
            say(&format!(
                "  {queued} triggers queued, {unconfirmed} messages unconfirmed"
            ));
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub async fn run(
    mut settings: Settings,
    catalog: Catalog,
    opts: &MorningOptions,
    mut say: impl FnMut(&str),
) -> Result<MorningReport, Error> {
    let (owner, store, worker_url) = prepare(&settings).await?;
    settings.database.url = worker_url.clone();
    settings.amqp.prefix = format!("{}_morning", settings.amqp.prefix);
    settings.database.pool_size = settings
        .database
        .pool_size
        .max(usize::from(settings.amqp.concurrency) + 4);
    let template = decode_input(TENANT_TEMPLATE.as_bytes())
        .map_err(|e| Error::Run(format!("tenant template: {e}")))?;
    let today = Utc::now().date_naive();
    let yesterday = today - Days::days(1);
    let data = Dataset::new(template, opts.tenants, opts.days, yesterday)
        .ok_or_else(|| Error::Run("tenant template: unreadable window".into()))?;

    let probe_before = probe(&catalog, &mut say).await?;
    let seed_started = Instant::now();
    let seed_rows = seed(&owner, &store, &catalog, &data, opts, &mut say).await?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    let table_bytes_before: BTreeMap<_, _> = owner.bench_table_sizes().await?.into_iter().collect();
    let server: BTreeMap<_, _> = owner.bench_server_settings().await?.into_iter().collect();

    let broker = Broker::open(&settings, &catalog, true).await?;
    let workers = Workers::spawn(&settings, &worker_url, opts.workers)?;
    workers.wait_ready().await?;
    let cpu = Sampler::start(workers.pids());
    say(&format!(
        "{} worker(s) ready, concurrency {} each; the morning starts",
        opts.workers, settings.amqp.concurrency
    ));

    let t0 = Utc::now();
    let mut load_files = Vec::new();
    let stamp = today.format("%Y%m%d");
    let metrics_load = format!("morning-{stamp}-metrics");
    for (kind, trigger) in [
        (Kind::RevenueEvents, false),
        (Kind::Campaigns, false),
        (Kind::Opportunities, false),
        (Kind::Metrics, true),
    ] {
        let id = match kind {
            Kind::Metrics => metrics_load.clone(),
            k => format!("morning-{stamp}-{k}"),
        };
        let l = ingest(&store, &catalog, &data, kind, Part::Morning, &id, trigger).await?;
        say(&format!(
            "load {}: {} rows in {:.2} s",
            l.kind, l.rows, l.seconds
        ));
        load_files.push(l);
    }
    let loaded = Utc::now();
    let morning = Morning {
        load_id: &metrics_load,
        as_of: yesterday,
        since: t0,
        tenants: opts.tenants,
    };
    let (facts, rss_first_cycle) = settle(&owner, &broker, &workers, &morning, &mut say).await?;
    let rss_decided = workers.peak_rss_mib();
    let last = facts.last_confirmed.unwrap_or(loaded).max(loaded);
    let watch_end = facts.last_evaluation.unwrap_or(loaded).max(loaded);
    // Detection is over when the follow-up starts queueing the scheduled triggers; its own
    // end waits for their publishing, which is the decide phase's.
    let detect_end = facts
        .first_scheduled_queued
        .or(facts.followed_up_at)
        .unwrap_or(watch_end)
        .max(watch_end);
    let decide_start = facts.first_trigger_queued.unwrap_or(detect_end);
    let load_rows = load_files.iter().map(|l| l.rows).sum();
    let phases = Phases {
        load: span(t0, t0, loaded, load_rows),
        load_files,
        watch: span(t0, loaded, watch_end, facts.evaluations),
        detect: span(t0, watch_end, detect_end, facts.deviations),
        decide: span(t0, decide_start, last, facts.cycles_completed),
    };
    let decide_cpu_ms_per_cycle = cpu
        .per(decide_start, last, phases.decide.count as f64)
        .await;
    say(&format!(
        "morning: {:.1} s end to end; decide {:.1} cycles/s{}",
        secs(t0, last),
        phases.decide.per_second,
        decide_cpu_ms_per_cycle.map_or_else(String::new, |c| format!(
            ", {:.2} ms of CPU a cycle ({:.2} of it PostgreSQL's)",
            c.machine_ms, c.postgres_ms
        ))
    ));

    let paced_reports_backlog = owner.bench_actions_awaiting_reports().await?;
    let paced = pace(
        &owner,
        &broker.client,
        opts.paced_rate,
        opts.paced_seconds,
        opts.tenants,
        None,
    )
    .await?;
    let paced_reports_backlog_after = owner.bench_actions_awaiting_reports().await?;
    say(&format!(
        "paced at {}/s: latency p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms; reports awaited {} -> {}",
        opts.paced_rate,
        paced.latency.p50_ms,
        paced.latency.p95_ms,
        paced.latency.p99_ms,
        paced_reports_backlog,
        paced_reports_backlog_after
    ));
    let worker_peak_rss_mib = workers.peak_rss_mib();
    let worker_peak_rss_mib_by_phase = BTreeMap::from([
        ("first_cycle", rss_first_cycle),
        ("last_confirmed", rss_decided),
        ("end", worker_peak_rss_mib.clone()),
    ]);
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    broker.close().await;
    let probe_after = probe(&catalog, &mut say).await?;
    let table_bytes_after: BTreeMap<_, _> = owner.bench_table_sizes().await?.into_iter().collect();

    let watched = (opts.tenants * opts.actions_per_tenant) as i64;
    let lost = Lost {
        tenants_without_cycle: (opts.tenants as i64 - (facts.cycles - facts.tenants_doubled))
            .max(0),
        tenants_with_two_cycles: facts.tenants_doubled,
        actions_unconfirmed: facts.actions_unpublished,
        outbox_pending: facts.outbox_pending,
        watched_actions_unevaluated: (watched - facts.evaluations).max(0),
    };

    say("ceilings: pgbench (one cycle's statements) and raw COPY");
    let window = (
        (yesterday - Days::days(29)).to_string(),
        yesterday.to_string(),
    );
    let (url, tenants) = (worker_url.clone(), opts.tenants);
    let (clients, seconds) = (opts.pgbench_clients, opts.pgbench_seconds);
    let pgbench_from = Utc::now();
    let pgbench = tokio::task::spawn_blocking(move || {
        pgbench_with(&url, tenants, clients, seconds, Some(&window))
    })
    .await
    .unwrap_or_else(|e| Err(Error::Run(e.to_string())));
    let pgbench_to = Utc::now();
    let pgbench_cycles_per_second = match pgbench {
        Ok(tps) => Some(tps),
        Err(e) => {
            say(&format!("pgbench unavailable: {e}"));
            None
        }
    };
    // Its transactions: the rate over the run it was asked for (the window read also holds
    // its connecting, a few milliseconds).
    let pgbench_cpu_ms_per_transaction = match pgbench_cycles_per_second {
        Some(tps) => {
            cpu.per(
                pgbench_from,
                pgbench_to,
                tps * f64::from(opts.pgbench_seconds),
            )
            .await
        }
        None => None,
    };
    drop(cpu);
    let copy_rows = (opts.tenants as u64 * 100).clamp(200_000, 2_000_000);
    let copy_seconds = store.bench_copy(copy_rows).await?;
    Ok(MorningReport {
        tenants: opts.tenants,
        days: data.days,
        actions_per_tenant: opts.actions_per_tenant,
        workers: opts.workers,
        concurrency: settings.amqp.concurrency,
        seed_seconds,
        seed_rows,
        end_to_end_seconds: secs(t0, last),
        decide_cpu_ms_per_cycle,
        cycles: facts.cycles,
        actions_published: facts.actions - facts.actions_unpublished,
        lost,
        ceiling: Ceiling {
            decide_ratio: pgbench_cycles_per_second
                .filter(|c| *c > 0.0)
                .map(|c| phases.decide.per_second / c),
            pgbench_cycles_per_second,
            copy_rows_per_second: copy_rows as f64 / copy_seconds.max(1e-9),
            postgres_cpu_ratio: pgbench_cpu_ms_per_transaction
                .zip(decide_cpu_ms_per_cycle)
                .filter(|(_, d)| d.postgres_ms > 0.0)
                .map(|(p, d)| p.postgres_ms / d.postgres_ms),
            pgbench_cpu_ms_per_transaction,
        },
        phases,
        paced,
        paced_reports_backlog,
        paced_reports_backlog_after,
        worker_peak_rss_mib,
        worker_peak_rss_mib_by_phase,
        table_bytes_before,
        table_bytes_after,
        server,
        machine: Machine {
            kernel_decides_per_second_before: probe_before,
            kernel_decides_per_second_after: probe_after,
        },
    })
}
