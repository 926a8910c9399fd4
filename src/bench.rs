//! `revenue-os bench`: the capacity benchmark. It seeds tenants into a dedicated database,
//! runs real worker processes against the local PostgreSQL and RabbitMQ, publishes triggers,
//! and reports throughput, latency from publish to the last action confirmed, worker peak RSS
//! and the outbox left over; then it measures the database ceiling for the same work with
//! pgbench (deploy/bench/cycle.sql) and reports the worker's fraction of it.

use chrono::{DateTime, SecondsFormat, Utc};
use revenue_os::broker::{self, Tap, Topology, TriggerClient};
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::{Trigger, TriggerMessage, TriggerType, decode_input};
use revenue_os::error::Error;
use revenue_os::store::{Store, url_with_database};
use serde::Serialize;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TENANT_TEMPLATE: &str = include_str!("../tests/fixtures/valid/demand_bound.json");
const PGBENCH_SCRIPT: &str = include_str!("../deploy/bench/cycle.sql");

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
    pub cycles_completed: i64,
    pub seconds: f64,
    pub cycles_per_second: f64,
    /// From trigger publish to the broker's confirm of the cycle's last action.
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

struct Workers {
    children: Vec<Child>,
    ports: Vec<u16>,
}

impl Workers {
    fn spawn(settings: &Settings, db_url: &str, n: usize) -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::Run(e.to_string()))?;
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| Error::Run(e.to_string()))?;
            let child = Command::new(&exe)
                .arg("worker")
                .env("DATABASE_URL", db_url)
                .env("AMQP_URL", &settings.amqp.url)
                .env("REVENUE_OS__AMQP__PREFIX", &settings.amqp.prefix)
                .env(
                    "REVENUE_OS__AMQP__CONCURRENCY",
                    settings.amqp.concurrency.to_string(),
                )
                .env(
                    "REVENUE_OS__DATABASE__POOL_SIZE",
                    settings.database.pool_size.to_string(),
                )
                .env("REVENUE_OS__DATABASE__MIGRATE_ON_START", "false")
                // Every trigger runs a full cycle instead of being skipped as too recent.
                .env("REVENUE_OS__KERNEL__MIN_CYCLE_INTERVAL_HOURS", "0")
                .env("REVENUE_OS__HTTP__LISTEN", format!("127.0.0.1:{port}"))
                .env("REVENUE_OS__CONSOLE__LISTEN", "127.0.0.1:0")
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::Run(format!("cannot start a worker: {e}")))?;
            children.push(child);
            ports.push(port);
        }
        Ok(Self { children, ports })
    }

    async fn wait_ready(&self) -> Result<(), Error> {
        for port in &self.ports {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if http_status(*port, "/readyz").await == Some(200) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::Run(format!("worker on :{port} never became ready")));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn peak_rss_mib(&self) -> Vec<f64> {
        self.children
            .iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok())
            .filter_map(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((kb / 1024.0 * 10.0).round() / 10.0)
            })
            .collect()
    }

    fn stop(mut self) {
        for c in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

async fn http_status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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

fn trigger(
    i: usize,
    tenants: usize,
    window: &revenue_os::contract::AnalysisWindow,
) -> TriggerMessage {
    TriggerMessage {
        tenant_id: tenant_id(i % tenants + 1),
        trigger: Trigger {
            kind: TriggerType::Scheduled,
            source: "bench".into(),
            triggered_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        },
        analysis_window: Some(window.clone()),
    }
}

/// Waits until every message id has a cycle and no outbox row is pending, then measures.
async fn measure(
    client: &tokio_postgres::Client,
    sent: &HashMap<String, DateTime<Utc>>,
    started: DateTime<Utc>,
) -> Result<Phase, Error> {
    let ids: Vec<&str> = sent.keys().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM cycles WHERE message_id = ANY($1)),
                        (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
                &[&ids],
            )
            .await
            .map_err(revenue_os::store::StoreError::from)?;
        let (done, pending): (i64, i64) = (row.get(0), row.get(1));
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
    let rows = client
        .query(
            "SELECT c.message_id, c.status, max(o.published_at)
               FROM cycles c LEFT JOIN outbox o ON o.cycle_id = c.cycle_id AND o.action_id IS NOT NULL
              WHERE c.message_id = ANY($1)
              GROUP BY c.message_id, c.status",
            &[&ids],
        )
        .await
        .map_err(revenue_os::store::StoreError::from)?;
    let mut lat = Vec::with_capacity(rows.len());
    let mut completed = 0;
    let mut last = started;
    for r in &rows {
        let id: String = r.get(0);
        let status: String = r.get(1);
        let confirmed: Option<DateTime<Utc>> = r.get(2);
        completed += i64::from(status == "completed");
        if let (Some(done), Some(at)) = (confirmed, sent.get(&id)) {
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
fn pgbench(db_url: &str, tenants: usize, clients: u32, seconds: u32) -> Result<f64, Error> {
    let script =
        std::env::temp_dir().join(format!("revenue-os-cycle-{}.sql", uuid::Uuid::new_v4()));
    std::fs::write(&script, PGBENCH_SCRIPT).map_err(|e| Error::Run(e.to_string()))?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "extended", "-f"])
        .arg(&script)
        .args(["-D", &format!("tenants={tenants}")])
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

pub async fn run(
    mut settings: Settings,
    catalog: Catalog,
    opts: &BenchOptions,
    mut say: impl FnMut(&str),
) -> Result<BenchReport, Error> {
    // Its own database and prefix: the bench never touches a real tenant or queue.
    let db_url = url_with_database(&settings.database.url, "revenue_os_bench");
    settings.database.url = db_url.clone();
    settings.amqp.prefix = format!("{}_bench", settings.amqp.prefix);
    settings.database.pool_size = settings
        .database
        .pool_size
        .max(usize::from(settings.amqp.concurrency) + 2);
    drop_database(&settings).await?;
    Store::create_database_if_missing(&settings.database).await?;
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;

    let t = Instant::now();
    seed(&store, &catalog, opts.tenants).await?;
    let seed_seconds = t.elapsed().as_secs_f64();
    say(&format!(
        "seeded {} tenants in {seed_seconds:.1} s",
        opts.tenants
    ));

    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let conn = broker::connect(
        &settings.amqp,
        &broker::connection_name(&topology.prefix, "bench"),
    )
    .await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(broker::BrokerError::from)?;
    topology.declare(&ch).await?;
    purge(&ch, &topology).await?;
    // The executors' stand-in: every action is routable and consumed.
    let mut tap = Tap::open(&conn, &topology).await?;
    let drain = tokio::spawn(async move {
        while let Ok(Some(_)) = tap.next(Duration::from_secs(3600)).await {}
    });
    let client = TriggerClient::connect(&settings.amqp, topology.clone()).await?;

    let workers = Workers::spawn(&settings, &db_url, opts.workers)?;
    workers.wait_ready().await?;
    say(&format!(
        "{} worker(s) ready, concurrency {} each",
        opts.workers, settings.amqp.concurrency
    ));

    let (pg, pg_conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .map_err(revenue_os::store::StoreError::from)?;
    tokio::spawn(pg_conn);
    let template = decode_input(TENANT_TEMPLATE.as_bytes())
        .map_err(|e| Error::Run(format!("tenant template: {e}")))?;
    let window = template.analysis_window;

    // Saturation: every trigger at once, in confirmed batches.
    let mut sent = HashMap::with_capacity(opts.triggers);
    let started = Utc::now();
    for chunk in (0..opts.triggers).collect::<Vec<_>>().chunks(200) {
        let batch: Vec<(TriggerMessage, String)> = chunk
            .iter()
            .map(|i| {
                (
                    trigger(*i, opts.tenants, &window),
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
    let saturated = measure(&pg, &sent, started).await?;
    say(&format!(
        "saturated: {} triggers, {:.1} cycles/s, latency p50 {:.0} ms p99 {:.0} ms",
        saturated.triggers,
        saturated.cycles_per_second,
        saturated.latency.p50_ms,
        saturated.latency.p99_ms
    ));

    // Paced: a steady rate, for latency under a load the system keeps up with.
    let total = (opts.paced_rate * opts.paced_seconds) as usize;
    let mut sent = HashMap::with_capacity(total);
    let period = Duration::from_secs_f64(1.0 / f64::from(opts.paced_rate.max(1)));
    let mut tick = tokio::time::interval(period);
    let started = Utc::now();
    for i in 0..total {
        tick.tick().await;
        let id = format!("bench-p-{i}-{}", uuid::Uuid::new_v4());
        let at = Utc::now();
        client.send(&trigger(i, opts.tenants, &window), &id).await?;
        sent.insert(id, at);
    }
    let paced = measure(&pg, &sent, started).await?;
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
    client.close().await;
    drain.abort();
    let outbox_pending_at_end: i64 = pg
        .query_one(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .map_err(revenue_os::store::StoreError::from)?
        .get(0);
    let _ = topology.delete(&ch).await;
    let _ = conn.close(200, "bench done".into()).await;

    say(&format!(
        "pgbench: the same database work ({} clients, {} s)",
        opts.pgbench_clients, opts.pgbench_seconds
    ));
    let (tenants, clients, seconds) = (opts.tenants, opts.pgbench_clients, opts.pgbench_seconds);
    let url = db_url.clone();
    let measured = tokio::task::spawn_blocking(move || pgbench(&url, tenants, clients, seconds))
        .await
        .unwrap_or_else(|e| Err(Error::Run(e.to_string())));
    let pgbench_cycles_per_second = match measured {
        Ok(tps) => Some(tps),
        Err(e) => {
            say(&format!("pgbench unavailable: {e}"));
            None
        }
    };
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

async fn purge(ch: &lapin::Channel, topology: &Topology) -> Result<(), Error> {
    for q in [&topology.triggers_queue, &topology.dead_queue] {
        ch.queue_purge(
            q.as_str().into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .map_err(broker::BrokerError::from)?;
    }
    Ok(())
}

async fn drop_database(settings: &Settings) -> Result<(), Error> {
    let admin = url_with_database(&settings.database.url, "postgres");
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .map_err(revenue_os::store::StoreError::from)?;
    let task = tokio::spawn(conn);
    client
        .batch_execute("DROP DATABASE IF EXISTS revenue_os_bench WITH (FORCE)")
        .await
        .map_err(revenue_os::store::StoreError::from)?;
    drop(client);
    let _ = task.await;
    Ok(())
}
