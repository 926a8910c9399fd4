//! `ingest` and `loads`: a file decoded on a blocking thread (`crate::ingest`), streamed to
//! the store's loader through a bounded channel, then the follow-up of the load.

use super::{store, watchdog};
use crate::config::Settings;
use crate::contract::catalog::Catalog;
use crate::contract::{ErrorCode, KernelError, Violation};
use crate::error::Error;
use crate::ingest::{DecodeError, Decoder, Format, Kind, Known, Limits};
use crate::store::{Feed, LoadOutcome, LoadReport, LoadRequest, Store};
use serde::Serialize;
use serde_json::json;
use std::io::BufRead;
use std::time::Instant;

/// Rows per message on the channel, and messages in flight: what bounds the memory between
/// the decoder and the COPY.
const BATCH: usize = 2048;
const IN_FLIGHT: usize = 4;
/// Tenants one file may name: the load's scope is held in memory and in its `loads` row.
const MAX_TENANTS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub kind: Kind,
    pub format: Format,
    /// The file's name as given (`-`: stdin).
    pub source: String,
    pub load_id: Option<String>,
    pub snapshot: bool,
    pub quarantine: bool,
    /// Queue a scheduled trigger per loaded tenant after the follow-up (`--trigger`).
    pub trigger: bool,
    pub limits: Limits,
}

/// What `ingest` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestSummary {
    pub load_id: String,
    pub kind: String,
    pub rows: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub removed: i64,
    pub tenants: usize,
    pub replayed: bool,
    pub seconds: f64,
    /// Watchdog evaluations run for the loaded tenants (none for a replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog_evaluations: Option<usize>,
}

/// The KernelError-shaped INVALID_INPUT of a refused file: the first problems, and how many
/// more there are.
pub fn invalid_file(violations: Vec<Violation>, total: i64) -> KernelError {
    let shown = violations.len() as i64;
    let message = match violations.first() {
        Some(v) if total == 1 => format!("the file is invalid: {}: {}", v.path, v.problem),
        _ => format!("the file is invalid: {total} problems; nothing was loaded"),
    };
    let mut e =
        KernelError::new(ErrorCode::InvalidInput, message).with("violations", json!(violations));
    if total > shown {
        e = e.with("more_violations", json!(total - shown));
    }
    e
}

/// Loads one file from `reader` (no follow-up): the load's record and whether it was a
/// replay. An invalid file is `Error::Kernel` (INVALID_INPUT, exit 2) and writes nothing.
pub async fn load(
    store: &Store,
    catalog: &Catalog,
    reader: impl BufRead + Send + 'static,
    opts: &IngestOptions,
) -> Result<(LoadReport, bool), Error> {
    if opts.snapshot && !opts.kind.spec().snapshot {
        return Err(Error::Usage(format!(
            "--snapshot applies to campaigns and opportunities, not {}",
            opts.kind
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Feed>(IN_FLIGHT);
    let (kind, format, limits) = (opts.kind, opts.format, opts.limits);
    let known = Known::from_catalog(catalog);
    let decoder = tokio::task::spawn_blocking(move || -> Result<(), DecodeError> {
        let fail = |e: DecodeError| {
            let _ = tx.blocking_send(Feed::Failed(e.to_string()));
            Err(e)
        };
        let mut d = match Decoder::new(kind, format, reader, limits, known) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        let mut batch = Vec::with_capacity(BATCH);
        // Bounded by the tenants that exist, not by the file.
        let mut tenants = std::collections::HashSet::new();
        loop {
            match d.next_row() {
                Ok(Some(row)) => {
                    let t = match &row {
                        crate::ingest::Decoded::Row(r) => Some(r.tenant),
                        crate::ingest::Decoded::Reject(j) => j.tenant,
                    };
                    tenants.extend(t);
                    if tenants.len() > MAX_TENANTS {
                        return fail(DecodeError::Invalid(Violation::new(
                            format!("line {}", row.line()),
                            format!("the file names more than {MAX_TENANTS} tenants"),
                        )));
                    }
                    batch.push(row);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.blocking_send(Feed::Rows(full)).is_err() {
                            return Ok(()); // the loader stopped; it says why
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return fail(e),
            }
        }
        if !batch.is_empty() && tx.blocking_send(Feed::Rows(batch)).is_err() {
            return Ok(());
        }
        let mut tenants: Vec<_> = tenants.into_iter().collect();
        tenants.sort();
        let _ = tx.blocking_send(Feed::Done {
            digest: d.digest(),
            tenants,
        });
        Ok(())
    });
    let req = LoadRequest {
        kind: opts.kind,
        source: opts.source.clone(),
        load_id: opts.load_id.clone(),
        snapshot: opts.snapshot,
        quarantine: opts.quarantine,
        trigger: opts.trigger,
    };
    let outcome = store.ingest(&req, catalog, rx).await;
    // The decoder ends once the loader has returned (its channel is closed).
    let decoded = decoder.await?;
    match outcome? {
        LoadOutcome::Loaded(r) => Ok((r, false)),
        LoadOutcome::Replayed(r) => Ok((r, true)),
        LoadOutcome::Invalid { violations, total } => {
            Err(Error::Kernel(invalid_file(violations, total)))
        }
        LoadOutcome::InputFailed(why) => match decoded {
            Err(DecodeError::Invalid(v)) => Err(Error::Kernel(invalid_file(vec![v], 1))),
            Err(DecodeError::Io(e)) => Err(Error::Io(e)),
            Ok(()) => Err(Error::Run(format!("ingest: {why}"))),
        },
    }
}

/// `revenue-os ingest`: the load, then the watchdog over the loaded tenants that have
/// actions due (new metric days may complete an abort condition or a window). The
/// deviation hand-off is a periodic service's, from `loads.followed_up_at`.
pub async fn ingest(
    settings: &Settings,
    catalog: &Catalog,
    reader: impl BufRead + Send + 'static,
    opts: &IngestOptions,
) -> Result<IngestSummary, Error> {
    let started = Instant::now();
    let store = store(settings, false).await?;
    let (report, replayed) = load(&store, catalog, reader, opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    let watchdog_evaluations = if replayed {
        None
    } else {
        let loaded: std::collections::HashSet<_> = report.tenants.iter().copied().collect();
        let due: Vec<_> = store
            .watch_due_tenants()
            .await?
            .into_iter()
            .filter(|t| loaded.contains(t))
            .collect();
        let wd = watchdog(settings, catalog);
        let deadline = settings.database.call_timeout();
        Some(
            crate::watchdog::sweep_tenants(&store, &wd, &due, deadline)
                .await?
                .evaluated,
        )
    };
    Ok(summary(&report, replayed, seconds, watchdog_evaluations))
}

pub fn summary(
    r: &LoadReport,
    replayed: bool,
    seconds: f64,
    watchdog_evaluations: Option<usize>,
) -> IngestSummary {
    IngestSummary {
        load_id: r.load_id.clone(),
        kind: r.kind.clone(),
        rows: r.rows,
        inserted: r.inserted,
        updated: r.updated,
        unchanged: r.unchanged,
        rejected: r.rejected,
        removed: r.removed,
        tenants: r.tenants.len(),
        replayed,
        seconds: (seconds * 1000.0).round() / 1000.0,
        watchdog_evaluations,
    }
}

/// `revenue-os loads`: recent loads, newest first.
pub async fn loads(
    settings: &Settings,
    tenant: Option<uuid::Uuid>,
    limit: i64,
) -> Result<serde_json::Value, Error> {
    let store = store(settings, false).await?;
    let list: Vec<serde_json::Value> = store
        .loads(tenant, limit)
        .await?
        .into_iter()
        .map(|l| {
            json!({
                "load_id": l.load_id, "kind": l.kind, "source": l.source,
                "snapshot": l.snapshot, "rows": l.rows, "inserted": l.inserted,
                "updated": l.updated, "unchanged": l.unchanged, "rejected": l.rejected,
                "removed": l.removed, "tenants": l.tenants.len(),
                "started_at": l.started_at, "committed_at": l.committed_at,
            })
        })
        .collect();
    Ok(json!(list))
}

/// `revenue-os ingest-bench`: a generated metrics file of `tenants × metrics × days` rows
/// loaded into a fresh database of its own (`revenue_os_ingest_bench`), as the worker's role
/// under row-level security; throughput and this process's peak RSS during the load.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub tenants: u64,
    pub metrics: usize,
    pub days: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub rows: i64,
    pub bytes: u64,
    pub tenants: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub mib_per_sec: f64,
    /// VmHWM of this process over the load (reset just before it), KiB.
    pub peak_rss_kib: Option<u64>,
    pub role: String,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn bench(
    settings: &Settings,
    catalog: &Catalog,
    o: &BenchOptions,
) -> Result<BenchReport, Error> {
    use crate::ingest::generate::{MetricsFile, bench_tenant};
    use crate::store::{WORKER_ROLE, url_as, url_with_database};
    const DB: &str = "revenue_os_ingest_bench";
    let mut admin = settings.database.clone();
    admin.url = url_with_database(&settings.database.url, "postgres");
    let server = Store::connect(&admin).await?;
    server
        .pool()
        .get()
        .await
        .map_err(crate::store::StoreError::from)?
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await
        .map_err(crate::store::StoreError::from)?;
    server.pool().close();
    let mut owner = settings.database.clone();
    owner.url = url_with_database(&settings.database.url, DB);
    Store::create_database_if_missing(&owner).await?;
    let owner_store = Store::connect(&owner).await?;
    owner_store.migrate().await?;
    owner_store.grant_worker(WORKER_ROLE).await?;
    let ids: Vec<uuid::Uuid> = (0..o.tenants).map(bench_tenant).collect();
    // Seeded by the migrating role, which a bench runs as a superuser (as `bench` does).
    owner_store
        .pool()
        .get()
        .await
        .map_err(crate::store::StoreError::from)?
        .execute(
            "INSERT INTO tenants (tenant_id) SELECT unnest($1::uuid[])",
            &[&ids],
        )
        .await
        .map_err(crate::store::StoreError::from)?;
    drop(ids);
    owner_store.pool().close();
    let mut worker = owner.clone();
    worker.url = url_as(&owner.url, WORKER_ROLE);
    let store = Store::connect(&worker).await?;

    let metrics: Vec<String> = catalog
        .metrics()
        .take(o.metrics.max(1))
        .map(|m| m.id.clone())
        .collect();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let file = MetricsFile::new(o.tenants, metrics, o.days, start);
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = std::io::BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: file,
            n: bytes.clone(),
        },
    );
    let opts = IngestOptions {
        kind: Kind::Metrics,
        format: Format::Csv,
        source: "generated".into(),
        load_id: None,
        snapshot: false,
        quarantine: false,
        trigger: false,
        limits: Limits::default(),
    };
    // Peak RSS from here on: "5" resets VmHWM (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let (report, _) = load(&store, catalog, reader, &opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = bytes.load(std::sync::atomic::Ordering::Relaxed);
    Ok(BenchReport {
        rows: report.rows,
        bytes,
        tenants: report.tenants.len(),
        seconds,
        rows_per_sec: report.rows as f64 / seconds,
        mib_per_sec: bytes as f64 / (1024.0 * 1024.0) / seconds,
        peak_rss_kib: vm_hwm_kib(),
        role: WORKER_ROLE.into(),
    })
}
