//! The outbox relay: publishes stored outbox rows on the current confirm-mode channel, marks
//! them published on the broker's ack, and leaves them pending (with a backoff) on a nack, a
//! return or a lost connection. The outbox sweep (`periodic::OutboxSweep`) re-publishes
//! whatever stays pending.

use super::coalesce::Coalescer;
use super::health::WorkerStatus;
use super::plan::to_outgoing;
use crate::broker::{BrokerError, ConfirmedPublisher};
use crate::store::{OutboxKey, OutboxRow, Store, StoreError, bounded};
use crate::telemetry::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many pending rows one sweep looks at.
const SWEEP_LIMIT: i64 = 500;

/// Transactions marking confirmed rows at once. Whatever is confirmed while they run waits and
/// goes in the next one, so under load one mark covers many publishes instead of one each.
const MARKERS: usize = 2;

/// The publisher of the current broker session (replaced on reconnect).
#[derive(Default)]
pub struct PublisherSlot(tokio::sync::RwLock<Option<Arc<ConfirmedPublisher>>>);

impl PublisherSlot {
    pub async fn set(&self, p: Option<Arc<ConfirmedPublisher>>) {
        *self.0.write().await = p;
    }

    pub async fn current(&self) -> Option<Arc<ConfirmedPublisher>> {
        self.0.read().await.clone().filter(|p| p.is_usable())
    }
}

/// Tries per best-effort message (a reply, a panic's event), and the pause between them: a
/// nack during a quorum leader election lasts well under a second.
const DIRECT_TRIES: u32 = 4;
const DIRECT_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
    pub skipped: usize,
}

pub struct Relay {
    store: Store,
    pub publisher: PublisherSlot,
    sweep_every: Duration,
    /// The deadline on each store call (`database.call_timeout_secs`).
    deadline: Duration,
    status: Arc<WorkerStatus>,
    /// Sweep everything now (a new broker session: what the outage left pending goes out at
    /// once instead of at the next interval).
    kick: tokio::sync::Notify,
    /// Rows being published by this process right now (unit relay vs sweeper).
    in_flight: Mutex<HashSet<i64>>,
    /// Earliest next attempt of rows that failed.
    not_before: Mutex<HashMap<i64, Instant>>,
    /// Rows the previous sweep saw pending: a row is swept only once it has been pending for a
    /// whole sweep interval, so a fresh row another process is relaying is left to it.
    seen: Mutex<HashSet<i64>>,
    /// Confirmed rows on their way to being marked published.
    marks: Coalescer<OutboxKey>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    pub fn new(
        store: Store,
        sweep_every: Duration,
        deadline: Duration,
        status: Arc<WorkerStatus>,
    ) -> Self {
        Self {
            store,
            publisher: PublisherSlot::default(),
            sweep_every,
            deadline,
            status,
            kick: tokio::sync::Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            not_before: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            marks: Coalescer::new(MARKERS),
        }
    }

    /// Asks the sweeper to sweep every pending row now.
    /// Publishes messages kept outside the outbox (the `reply_to` reply, a panic's event):
    /// a nacked or unconfirmed one is sent again with the same message id, on the session's
    /// current publisher (a new one after a reconnect), a few times; then it is logged lost.
    pub async fn publish_direct(&self, msgs: &[crate::broker::Outgoing]) {
        for m in msgs {
            let mut last = None;
            for attempt in 0..DIRECT_TRIES {
                if attempt > 0 {
                    tokio::time::sleep(DIRECT_PAUSE).await;
                }
                let Some(p) = self.publisher.current().await else {
                    last = Some("no broker session".to_owned());
                    continue;
                };
                match p.publish(m).await {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.is_retryable() => last = Some(e.to_string()),
                    Err(e) => {
                        last = Some(e.to_string());
                        break;
                    }
                }
            }
            if let Some(error) = last {
                tracing::warn!(message_id = %m.message_id, %error, "reply/event not sent");
            }
        }
    }

    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Resolves at the next kick (or at once, if one came since the last wait).
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// A store call under the deadline; an unreachable database shuts the worker's gate.
    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let r = bounded(self.deadline, f).await;
        match &r {
            Ok(_) => self.status.db_answered(),
            Err(e) if e.is_unreachable() => self.status.report_unreachable(e),
            Err(_) => {}
        }
        r
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let exp = attempts.clamp(0, 3) as u32;
        let base = self.sweep_every.max(Duration::from_millis(200)) * 2u32.pow(exp);
        // Jitter so that many rows failing together do not retry in lockstep.
        let jitter = base.mul_f64(fastrand_fraction() * 0.25);
        base + jitter
    }

    /// Publishes `rows` (in order) and records the broker's verdict on each.
    pub async fn publish(&self, rows: Vec<OutboxRow>) -> RelayReport {
        let started = Instant::now();
        let mut report = RelayReport::default();
        let rows: Vec<OutboxRow> = {
            let mut flying = lock(&self.in_flight);
            rows.into_iter()
                .filter(|r| {
                    let claimed = flying.insert(r.id);
                    if !claimed {
                        report.skipped += 1;
                    }
                    claimed
                })
                .collect()
        };
        if rows.is_empty() {
            return report;
        }
        let results = match self.publisher.current().await {
            Some(p) => {
                let out: Vec<_> = rows.iter().map(|r| to_outgoing(&r.message)).collect();
                p.publish_batch(&out).await
            }
            None => rows
                .iter()
                .map(|_| Err(BrokerError::Timeout("broker connection")))
                .collect(),
        };
        let mut confirmed = Vec::with_capacity(rows.len());
        for (row, res) in rows.iter().zip(results) {
            match res {
                Ok(()) => {
                    report.published += 1;
                    lock(&self.not_before).remove(&row.id);
                    confirmed.push(row.key());
                }
                Err(e) => {
                    report.failed += 1;
                    let reason = match &e {
                        BrokerError::Returned { .. } => "returned",
                        BrokerError::Nacked(_) => "nacked",
                        _ => "broker",
                    };
                    metrics::publish_failure(reason);
                    tracing::warn!(outbox_id = row.id, message_id = %row.message.message_id,
                        exchange = %row.message.exchange, error = %e, "outbox row not published");
                    let wait = self.backoff(row.attempts + 1);
                    lock(&self.not_before).insert(row.id, Instant::now() + wait);
                    if let Err(e2) = self
                        .call(self.store.record_publish_failure(row.key(), &e.to_string()))
                        .await
                    {
                        tracing::warn!(outbox_id = row.id, error = %e2, "could not record publish failure");
                    }
                }
            }
        }
        if !confirmed.is_empty() {
            self.mark(confirmed).await;
        }
        metrics::stage("publish", started.elapsed());
        let mut flying = lock(&self.in_flight);
        for r in &rows {
            flying.remove(&r.id);
        }
        report
    }

    /// Marks `keys` published, together with whatever else was confirmed meanwhile (see
    /// `Coalescer`). A failed mark is logged by the call that ran it.
    async fn mark(&self, keys: Vec<OutboxKey>) {
        self.marks
            .run(keys, |keys, publishes| async move {
                match self.call(self.store.mark_published_many(&keys)).await {
                    Ok(lags) => {
                        metrics::mark_batch(publishes);
                        lags.into_iter().for_each(metrics::outbox_lag);
                        true
                    }
                    // The rows stay pending and are published again later; executors dedupe
                    // on message_id.
                    Err(e) => {
                        tracing::warn!(rows = keys.len(), error = %e, "could not mark published");
                        false
                    }
                }
            })
            .await;
    }

    /// One sweep. `all` skips the ageing rule (start-up and shutdown flush). `None`: pending
    /// rows but no broker session to publish them on, so nothing was tried.
    pub async fn sweep(&self, all: bool) -> Result<Option<RelayReport>, crate::store::StoreError> {
        let (pending, oldest) = self.call(self.store.outbox_backlog()).await?;
        metrics::outbox_backlog(pending, oldest);
        if pending == 0 {
            *lock(&self.seen) = HashSet::new();
            return Ok(Some(RelayReport::default()));
        }
        let rows = self.call(self.store.pending_outbox(SWEEP_LIMIT)).await?;
        if self.publisher.current().await.is_none() {
            // Rows keep their age for the next sweep.
            return Ok(None);
        }
        let now = Instant::now();
        let due: Vec<OutboxRow> = {
            let prev = lock(&self.seen);
            let nb = lock(&self.not_before);
            rows.iter()
                .filter(|r| all || prev.contains(&r.id))
                .filter(|r| all || nb.get(&r.id).is_none_or(|t| *t <= now))
                .cloned()
                .collect()
        };
        *lock(&self.seen) = rows.iter().map(|r| r.id).collect();
        if due.is_empty() {
            return Ok(Some(RelayReport::default()));
        }
        // Other workers sweep the same outbox: publish only the rows this one claimed.
        let keys: Vec<_> = due.iter().map(OutboxRow::key).collect();
        let won: HashSet<i64> = self
            .call(self.store.claim_outbox(&keys, CLAIM_TTL))
            .await?
            .into_iter()
            .collect();
        let due: Vec<OutboxRow> = due.into_iter().filter(|r| won.contains(&r.id)).collect();
        let report = self.publish(due).await;
        if report.published + report.failed > 0 {
            tracing::info!(
                published = report.published,
                failed = report.failed,
                "outbox sweep"
            );
        }
        Ok(Some(report))
    }
}

/// How long a sweeper's claim keeps other workers off a row: longer than one publish batch
/// may take (its confirm deadline), released at once when the publish fails.
const CLAIM_TTL: Duration = Duration::from_secs(60);

/// A cheap fraction in [0, 1) for jitter (no crate needed for this).
fn fastrand_fraction() -> f64 {
    let n = uuid::Uuid::new_v4().as_u128() as u64;
    (n >> 11) as f64 / (1u64 << 53) as f64
}
