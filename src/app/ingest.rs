//! `ingest` and `loads`: a file decoded on a blocking thread (`crate::ingest`), streamed to
//! the store's loader through a bounded channel, then the follow-up of the load.

use super::{store, watch};
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

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub kind: Kind,
    pub format: Format,
    /// The file's name as given (`-`: stdin).
    pub source: String,
    pub load_id: Option<String>,
    pub snapshot: bool,
    pub quarantine: bool,
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
    let mut e = KernelError::new(ErrorCode::InvalidInput, message).with("violations", json!(violations));
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
        loop {
            match d.next_row() {
                Ok(Some(row)) => {
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
        let _ = tx.blocking_send(Feed::Done { digest: d.digest() });
        Ok(())
    });
    let req = LoadRequest {
        kind: opts.kind,
        source: opts.source.clone(),
        load_id: opts.load_id.clone(),
        snapshot: opts.snapshot,
        quarantine: opts.quarantine,
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
        let due = store.watch_due_tenants().await?;
        let mut n = 0;
        for t in due.into_iter().filter(|t| report.tenants.contains(t)) {
            n += watch(&store, settings, catalog, Some(t)).await?.len();
        }
        Some(n)
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
