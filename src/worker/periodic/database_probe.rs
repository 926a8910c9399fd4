//! Keeps the database's last answer fresh for `/readyz` and, while the gate is shut, probes
//! with backoff until the database answers, then opens it. One line when an outage starts
//! (written by whoever found it), one a minute while it lasts, one when it ends.

use super::{Next, Periodic};
use crate::store::{Store, StoreError, bounded};
use crate::worker::health::WorkerStatus;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);
const PING: Duration = Duration::from_secs(2);

pub struct DatabaseProbe {
    store: Store,
    status: Arc<WorkerStatus>,
    outage: Mutex<Option<Outage>>,
}

struct Outage {
    since: Instant,
    probes: u32,
    logged: Instant,
    backoff: backon::ExponentialBackoff,
}

fn backoff() -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build()
}

impl DatabaseProbe {
    pub fn new(store: Store, status: Arc<WorkerStatus>) -> Self {
        Self {
            store,
            status,
            outage: Mutex::new(None),
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Between outages: ping only when nothing else answered lately.
    async fn watch(&self) -> Next {
        let fresh = self.status.snapshot().db_ok_age.is_some_and(|a| a < EVERY);
        if !fresh && !self.status.db_down() {
            match bounded(PING, self.store.ping()).await {
                Ok(()) => self.status.db_answered(),
                Err(e) if e.is_unreachable() => self.status.report_unreachable(&e),
                Err(e) => tracing::warn!(error = %e, "database probe failed"),
            }
        }
        if !self.status.db_down() {
            return Next::Interval;
        }
        let now = Instant::now();
        *self.outage() = Some(Outage {
            since: now,
            probes: 0,
            logged: now,
            backoff: backoff(),
        });
        Next::After(Duration::ZERO)
    }

    /// During an outage: probe with backoff until an answer opens the gate.
    async fn recover(&self) -> Next {
        let answer = bounded(PING, self.store.ping()).await;
        let mut guard = self.outage();
        let Some(o) = guard.as_mut() else {
            return Next::Interval;
        };
        o.probes += 1;
        match answer {
            Ok(()) => {
                self.status.db_answered();
                tracing::info!(
                    down_secs = o.since.elapsed().as_secs(),
                    probes = o.probes,
                    "database answers again; consumption resumed"
                );
                *guard = None;
                Next::Interval
            }
            Err(e) => {
                if o.logged.elapsed() >= Duration::from_secs(60) {
                    tracing::warn!(error = %e, down_secs = o.since.elapsed().as_secs(),
                        probes = o.probes, "database still unreachable");
                    o.logged = Instant::now();
                }
                Next::After(o.backoff.next().unwrap_or(Duration::from_secs(5)))
            }
        }
    }
}

impl Periodic for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database_probe"
    }

    fn interval(&self) -> Duration {
        EVERY
    }

    fn gated(&self) -> bool {
        false
    }

    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>> {
        Box::pin(async move {
            let in_outage = self.outage().is_some();
            Ok(if in_outage {
                self.recover().await
            } else {
                self.watch().await
            })
        })
    }

    /// Whoever finds the database gone shuts the gate; the probe starts at once.
    fn woken(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.outage().is_some() {
                std::future::pending::<()>().await;
            }
            self.status.db_lost().await;
        })
    }
}
