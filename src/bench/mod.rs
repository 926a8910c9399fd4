//! `revenue-os bench`: the capacity benchmark. It seeds tenants into a dedicated database,
//! runs real worker processes against the local PostgreSQL and RabbitMQ, publishes triggers,
//! and reports throughput, latency from publish to the last action confirmed, worker peak RSS
//! and the outbox left over; then it measures the database ceiling for the same work with
//! pgbench (deploy/bench/cycle.sql) and reports the worker's fraction of it.

mod cpu;
mod dataset;
pub mod morning;
mod workers;

use crate::broker::{self, Tap, Topology, TriggerClient};
use crate::config::Settings;
use crate::contract::catalog::Catalog;
use crate::contract::{AnalysisWindow, Trigger, TriggerMessage, TriggerType, decode_input};
use crate::demo::standin::StandIn;
use crate::error::Error;
use crate::store::{Store, url_with_database};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use workers::Workers;

const TENANT_TEMPLATE: &str = include_str!("../../tests/fixtures/valid/demand_bound.json");
const PGBENCH_SCRIPT: &str = include_str!("../../deploy/bench/cycle.sql");
/// The example tenant's analysis window, which the classic bench's triggers name.
const TEMPLATE_WINDOW: (&str, &str) = ("2026-10-27", "2026-11-25");

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub tenants: usize,
    pub triggers: usize,
    pub workers: usize,
    /// Triggers per second in the paced phase (latency at a steady rate).
    pub paced_rate: u32,
    pub paced_seconds: u32,
    pub pgbench_clients: u32,
    pub pgbench_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub triggers: usize,
    /// Decided: completed, or skipped with nothing to do (in the morning's paced phase every
    /// tenant's actions are still in flight, so its cycles find nothing more to do).
    pub cycles_completed: i64,
    pub seconds: f64,
    pub cycles_per_second: f64,
    /// From trigger publish to the broker's confirm of the last message the cycle published.
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub tenants: usize,
    pub workers: usize,
    pub concurrency: u16,
    pub seed_seconds: f64,
    pub saturated: Phase,
    pub paced: Phase,
    pub worker_peak_rss_mib: Vec<f64>,
    pub outbox_pending_at_end: i64,
    pub pgbench_cycles_per_second: Option<f64>,
    /// Saturated worker throughput / pgbench throughput for the same database work.
    pub ceiling_fraction: Option<f64>,
}

/// Bench tenants have predictable ids so the pgbench script can pick one by number.
pub fn tenant_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    Latency {
        p50_ms: percentile(&ms, 50.0),
        p95_ms: percentile(&ms, 95.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

/// Imports `n` tenants made from the example tenant, numbers scaled per tenant so that their
/// decisions differ.
async fn seed(store: &Store, catalog: &Catalog, n: usize) -> Result<(), Error> {
    let template = decode_input(TENANT_TEMPLATE.as_bytes())
        .map_err(|e| Error::Run(format!("tenant template: {e}")))?;
    let mut next = 1;
    while next <= n {
        let batch: Vec<usize> = (next..=n).take(8).collect();
        next += batch.len();
        let imports = batch.iter().map(|i| {
            let mut t = template.clone();
            t.tenant_id = tenant_id(*i);
            let scale = 0.7 + (*i % 7) as f64 * 0.1;
            for m in &mut t.metrics {
                m.value *= scale;
            }
            async move { store.import(&t, catalog).await }
        });
        for r in futures_util::future::join_all(imports).await {
            r?;
        }
    }
    Ok(())
}

/// A scheduled trigger for the `i`th tenant (mod `tenants`); no window: the default one.
fn trigger(i: usize, tenants: usize, window: Option<&AnalysisWindow>) -> TriggerMessage {
    TriggerMessage {
        tenant_id: tenant_id(i % tenants + 1),
        trigger: Trigger {
            kind: TriggerType::Scheduled,
            source: "bench".into(),
            triggered_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        },
        analysis_window: window.cloned(),
    }
}

/// Waits until every message id has a cycle and no outbox row is pending, then measures.
async fn measure(
    store: &Store,
    sent: &HashMap<String, DateTime<Utc>>,
    started: DateTime<Utc>,
) -> Result<Phase, Error> {
    let ids: Vec<&str> = sent.keys().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (done, pending) = store.bench_progress(&ids).await?;
        if done as usize >= ids.len() && pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Run(format!(
                "{done} of {} cycles after 30 min",
                ids.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lat = Vec::with_capacity(ids.len());
    let mut completed = 0;
    let mut last = started;
    for c in store.bench_cycles(&ids).await? {
        completed += i64::from(c.completed);
        if let (Some(done), Some(at)) = (c.last_confirmed, sent.get(&c.message_id)) {
            lat.push((done - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            last = last.max(done);
        }
    }
    let seconds = ((last - started).num_milliseconds() as f64 / 1000.0).max(0.001);
    Ok(Phase {
        triggers: sent.len(),
        cycles_completed: completed,
        seconds,
        cycles_per_second: completed as f64 / seconds,
        latency: latency(lat),
    })
}

/// Runs pgbench with the bench script against the bench database: completed cycles/s.
/// `window` is the analysis window its reads cover (`ws`, `we`), the template's by default.
fn pgbench_with(
    db_url: &str,
    tenants: usize,
    clients: u32,
    seconds: u32,
    window: Option<&(String, String)>,
) -> Result<f64, Error> {
    let (ws, we) = window
        .cloned()
        .unwrap_or_else(|| (TEMPLATE_WINDOW.0.to_owned(), TEMPLATE_WINDOW.1.to_owned()));
    let script =
        std::env::temp_dir().join(format!("revenue-os-cycle-{}.sql", uuid::Uuid::new_v4()));
    std::fs::write(&script, PGBENCH_SCRIPT).map_err(|e| Error::Run(e.to_string()))?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&script)
        .args(["-D", &format!("tenants={tenants}")])
        .args(["-D", &format!("ws={ws}"), "-D", &format!("we={we}")])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ])
        .arg(db_url)
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| Error::Run(format!("pgbench: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .ok_or_else(|| {
            Error::Run(format!(
                "pgbench gave no tps: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            ))
        })
}

/// The benchmark's own database, seeded; its settings point at it.
async fn prepare(
    settings: &mut Settings,
    catalog: &Catalog,
    tenants: usize,
) -> Result<(Store, f64), Error> {
    // Its own database and prefix: the bench never touches a real tenant or queue.
    settings.database.url = url_with_database(&settings.database.url, "revenue_os_bench");
    settings.amqp.prefix = format!("{}_bench", settings.amqp.prefix);
    settings.database.pool_size = settings
        .database
        .pool_size
        .max(usize::from(settings.amqp.concurrency) + 2);
    Store::drop_database(&settings.database).await?;
    Store::create_database_if_missing(&settings.database).await?;
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let t = Instant::now();
    seed(&store, catalog, tenants).await?;
    Ok((store, t.elapsed().as_secs_f64()))
}

/// The bench's broker side: its topology declared and purged, a stand-in executor draining
/// every action queue, and a trigger client.
struct Broker {
    conn: lapin::Connection,
    channel: lapin::Channel,
    topology: Topology,
    client: TriggerClient,
    drain: Option<tokio::task::JoinHandle<()>>,
    standin: Option<StandIn>,
}

impl Broker {
    /// `report`: a stand-in executor that reports `applied` for every action (so the
    /// worker's results consumer has work) instead of a silent drain.
    async fn open(settings: &Settings, catalog: &Catalog, report: bool) -> Result<Self, Error> {
        let topology = Topology::from_settings(&settings.amqp, catalog);
        let name = broker::connection_name(&topology.prefix, "bench");
        let conn = broker::connect(&settings.amqp, &name).await?;
        let channel = conn
            .create_channel()
            .await
            .map_err(broker::BrokerError::from)?;
        topology.declare(&channel).await?;
        for q in [&topology.triggers_queue, &topology.dead_queue] {
            channel
                .queue_purge(
                    q.as_str().into(),
                    lapin::options::QueuePurgeOptions::default(),
                )
                .await
                .map_err(broker::BrokerError::from)?;
        }
        // The executors' stand-in: every action is routable and consumed.
        let (drain, standin) = if report {
            let clock = crate::clock::Clock::system();
            let s = StandIn::start(&settings.amqp, &topology, clock).await?;
            (None, Some(s))
        } else {
            let mut tap = Tap::open(&conn, &topology).await?;
            let drain = tokio::spawn(async move {
                while let Ok(Some(_)) = tap.next(Duration::from_secs(3600)).await {}
            });
            (Some(drain), None)
        };
        let client = TriggerClient::connect(&settings.amqp, topology.clone()).await?;
        Ok(Self {
            conn,
            channel,
            topology,
            client,
            drain,
            standin,
        })
    }

    /// Triggers waiting in the triggers queue (not those a worker holds unacknowledged).
    async fn triggers_waiting(&self) -> Result<u32, Error> {
        let q = self
            .channel
            .queue_declare(
                self.topology.triggers_queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .map_err(broker::BrokerError::from)?;
        Ok(q.message_count())
    }

    async fn close(self) {
        self.client.close().await;
        if let Some(d) = self.drain {
            d.abort();
        }
        if let Some(s) = self.standin {
            let _ = s.stop().await;
        }
        let _ = self.topology.delete(&self.channel).await;
        let _ = self.conn.close(200, "bench done".into()).await;
    }
}

/// Saturation: every trigger at once, in confirmed batches.
async fn saturate(
    store: &Store,
    client: &TriggerClient,
    opts: &BenchOptions,
    window: &AnalysisWindow,
) -> Result<Phase, Error> {
    let mut sent = HashMap::with_capacity(opts.triggers);
    let started = Utc::now();
    for chunk in (0..opts.triggers).collect::<Vec<_>>().chunks(200) {
        let batch: Vec<(TriggerMessage, String)> = chunk
            .iter()
            .map(|i| {
                (
                    trigger(*i, opts.tenants, Some(window)),
                    format!("bench-s-{i}-{}", uuid::Uuid::new_v4()),
                )
            })
            .collect();
        let at = Utc::now();
        for (r, (_, id)) in client.send_many(&batch).await.into_iter().zip(&batch) {
            r?;
            sent.insert(id.clone(), at);
        }
    }
    measure(store, &sent, started).await
}

/// Paced: a steady rate, for latency under a load the system keeps up with.
async fn pace(
    store: &Store,
    client: &TriggerClient,
    rate: u32,
    seconds: u32,
    tenants: usize,
    window: Option<&AnalysisWindow>,
) -> Result<Phase, Error> {
    let total = (rate * seconds) as usize;
    let mut sent = HashMap::with_capacity(total);
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    let started = Utc::now();
    for i in 0..total {
        tick.tick().await;
        let id = format!("bench-p-{i}-{}", uuid::Uuid::new_v4());
        let at = Utc::now();
        client.send(&trigger(i, tenants, window), &id).await?;
        sent.insert(id, at);
    }
    measure(store, &sent, started).await
}

/// pgbench doing the same database work; `None` (said) when it cannot run.
async fn ceiling(db_url: &str, opts: &BenchOptions, say: &mut impl FnMut(&str)) -> Option<f64> {
    say(&format!(
        "pgbench: the same database work ({} clients, {} s)",
        opts.pgbench_clients, opts.pgbench_seconds
    ));
    let (tenants, clients, seconds) = (opts.tenants, opts.pgbench_clients, opts.pgbench_seconds);
    let url = db_url.to_owned();
    let measured =
        tokio::task::spawn_blocking(move || pgbench_with(&url, tenants, clients, seconds, None))
            .await
            .unwrap_or_else(|e| Err(Error::Run(e.to_string())));
    match measured {
        Ok(tps) => Some(tps),
        Err(e) => {
            say(&format!("pgbench unavailable: {e}"));
            None
        }
    }
}

pub async fn run(
    mut settings: Settings,
    catalog: Catalog,
    opts: &BenchOptions,
    mut say: impl FnMut(&str),
) -> Result<BenchReport, Error> {
    let (store, seed_seconds) = prepare(&mut settings, &catalog, opts.tenants).await?;
    say(&format!(
        "seeded {} tenants in {seed_seconds:.1} s",
        opts.tenants
    ));
    let broker = Broker::open(&settings, &catalog, false).await?;
    let workers = Workers::spawn(&settings, &settings.database.url, opts.workers)?;
    workers.wait_ready().await?;
    say(&format!(
        "{} worker(s) ready, concurrency {} each",
        opts.workers, settings.amqp.concurrency
    ));
    let template = decode_input(TENANT_TEMPLATE.as_bytes())
        .map_err(|e| Error::Run(format!("tenant template: {e}")))?;
    let window = template.analysis_window;

    let saturated = saturate(&store, &broker.client, opts, &window).await?;
    say(&format!(
        "saturated: {} triggers, {:.1} cycles/s, latency p50 {:.0} ms p99 {:.0} ms",
        saturated.triggers,
        saturated.cycles_per_second,
        saturated.latency.p50_ms,
        saturated.latency.p99_ms
    ));
    let paced = pace(
        &store,
        &broker.client,
        opts.paced_rate,
        opts.paced_seconds,
        opts.tenants,
        Some(&window),
    )
    .await?;
    say(&format!(
        "paced at {}/s: {} triggers, latency p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms",
        opts.paced_rate,
        paced.triggers,
        paced.latency.p50_ms,
        paced.latency.p95_ms,
        paced.latency.p99_ms
    ));

    let worker_peak_rss_mib = workers.peak_rss_mib();
    // Waiting on child processes blocks: keep it off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    broker.close().await;
    let (_, outbox_pending_at_end) = store.bench_progress(&[]).await?;
    let pgbench_cycles_per_second = ceiling(&settings.database.url, opts, &mut say).await;
    Ok(BenchReport {
        tenants: opts.tenants,
        workers: opts.workers,
        concurrency: settings.amqp.concurrency,
        seed_seconds,
        ceiling_fraction: pgbench_cycles_per_second.map(|c| saturated.cycles_per_second / c),
        saturated,
        paced,
        worker_peak_rss_mib,
        outbox_pending_at_end,
        pgbench_cycles_per_second,
    })
}
