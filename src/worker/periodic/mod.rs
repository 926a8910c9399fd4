//! Periodic services: work the worker does on a clock rather than on a delivery (the outbox
//! sweep, the watchdog, approval expiry, the action and overdue gauges, the database probe,
//! metrics upkeep). Each is one file implementing `Periodic`; one `Supervisor` starts, ticks,
//! stops and reports them all, so a new one plugs in without touching the consume loop
//! (river's `maintenance/` shape).

mod action_gauge;
mod approval_expiry;
mod database_probe;
mod detect_on_load;
mod heap_trim;
mod load_follow_up;
mod metrics_upkeep;
mod outbox_sweep;
mod overdue_gauge;
mod retention;
mod watchdog_sweep;
mod webhook_delivery;

pub use action_gauge::ActionGauge;
pub use approval_expiry::ApprovalExpiry;
pub use database_probe::DatabaseProbe;
pub use detect_on_load::DetectOnLoad;
pub use heap_trim::HeapTrim;
pub use load_follow_up::{LoadFollowUp, LoadListener};
pub use metrics_upkeep::MetricsUpkeep;
pub use outbox_sweep::OutboxSweep;
pub use overdue_gauge::OverdueGauge;
pub use retention::{MONTHS_AHEAD, Retention};
pub use watchdog_sweep::WatchdogSweep;
pub use webhook_delivery::{GlobalHook, WebhookDelivery};

use super::health::WorkerStatus;
use super::relay::Relay;
use super::unit::Context;
use crate::store::StoreError;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// When a service wants its next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// After its interval.
    Interval,
    /// Sooner or later than that (a probe backing off, a first sweep waiting for a session).
    After(Duration),
    /// After its interval, or `GAUGE_BUDGET` times this run's length if that is longer: a
    /// gauge whose read grows with the tables.
    Budgeted,
}

/// A gauge that reads the whole of a table grows with it: at 100,000 tenants
/// `oldest_overdue_evaluation_secs` took seconds, every 30 s, on every worker, out of the
/// same database the cycles need. A gauge waits this many times its last run's length
/// (its interval at the least), so that it never takes more than 2% of a connection's time;
/// its figures move in hours, and minutes of staleness hide nothing.
const GAUGE_BUDGET: u32 = 50;

/// The wait `Next::Budgeted` asks for: `every`, or `GAUGE_BUDGET` times what the run `took`.
fn budgeted(every: Duration, took: Duration) -> Duration {
    every.max(took.saturating_mul(GAUGE_BUDGET))
}

/// One kind of periodic work. `run_once` bounds its own store calls (they carry the
/// database deadline), so a tick never hangs the supervisor's task for long.
pub trait Periodic: Send + Sync + 'static {
    /// A short snake_case name, used in logs, metrics and `/healthz`.
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    /// Skip runs while the database gate is shut (the probe is the one that must not).
    fn gated(&self) -> bool {
        true
    }
    fn run_once(&self) -> BoxFuture<'_, Result<Next, StoreError>>;
    /// Resolves when the service should run before its interval is up (a kick).
    fn woken(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

/// Starts every registered service on its own task and stops them together.
pub struct Supervisor {
    status: Arc<WorkerStatus>,
    services: Vec<Arc<dyn Periodic>>,
}

/// The running services; `stop` cancels and waits for them.
pub struct Running {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Supervisor {
    pub fn new(status: Arc<WorkerStatus>) -> Self {
        Self {
            status,
            services: Vec::new(),
        }
    }

    pub fn with(mut self, service: Arc<dyn Periodic>) -> Self {
        self.services.push(service);
        self
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.services.iter().map(|s| s.name()).collect()
    }

    pub fn start(self) -> Running {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for service in self.services {
            self.status
                .service_registered(service.name(), service.interval());
            tasks.spawn(drive(service, self.status.clone(), stop.clone()));
        }
        Running { stop, tasks }
    }
}

impl Running {
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One service's loop: run at once, then after each interval (or sooner when woken), until
/// stopped. An unreachable database shuts the gate; any other failure is logged and the next
/// tick retries.
async fn drive(service: Arc<dyn Periodic>, status: Arc<WorkerStatus>, stop: CancellationToken) {
    let name = service.name();
    loop {
        status.service_ticked(name);
        let started = std::time::Instant::now();
        let next = if service.gated() && status.db_down() {
            Next::Interval
        } else {
            match service.run_once().await {
                Ok(next) => {
                    crate::telemetry::metrics::periodic_run(name, "ok");
                    next
                }
                Err(e) if e.is_unreachable() => {
                    crate::telemetry::metrics::periodic_run(name, "unreachable");
                    status.report_unreachable(&e);
                    Next::Interval
                }
                Err(e) => {
                    crate::telemetry::metrics::periodic_run(name, "failed");
                    tracing::warn!(service = name, error = %e, "periodic service failed; the next tick retries");
                    Next::Interval
                }
            }
        };
        let wait = match next {
            Next::Interval => service.interval(),
            Next::After(d) => d,
            Next::Budgeted => budgeted(service.interval(), started.elapsed()),
        };
        status.service_waits(name, wait.max(service.interval()));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = service.woken() => {}
        }
    }
}

/// The periodic services of a worker, from its settings.
pub fn for_worker(ctx: &Context, relay: &Arc<Relay>, status: &Arc<WorkerStatus>) -> Supervisor {
    let s = &ctx.settings;
    let topology = ctx.planner.topology();
    let deadline = s.database.call_timeout();
    let mut sup = Supervisor::new(status.clone())
        .with(Arc::new(OutboxSweep::new(
            relay.clone(),
            Duration::from_secs(s.worker.outbox_sweep_secs.max(1)),
        )))
        .with(Arc::new(DatabaseProbe::new(
            ctx.store.clone(),
            status.clone(),
        )))
        .with(Arc::new(ApprovalExpiry {
            store: ctx.store.clone(),
            clock: ctx.clock.clone(),
            ttl_hours: s.approval.ttl_hours,
            every: Duration::from_secs(s.approval.sweep_secs.max(1)),
            deadline,
        }))
        .with(Arc::new(Retention::new(
            ctx.store.clone(),
            ctx.clock.clone(),
            &s.retention,
            deadline,
        )))
        .with(Arc::new(ActionGauge {
            store: ctx.store.clone(),
            every: Duration::from_secs(30),
            deadline,
        }))
        .with(Arc::new(OverdueGauge {
            store: ctx.store.clone(),
            every: Duration::from_secs(30),
            deadline,
        }))
        .with(Arc::new(MetricsUpkeep {
            every: Duration::from_secs(5),
        }));
    if s.worker.heap_trim_secs > 0 {
        sup = sup.with(Arc::new(HeapTrim {
            every: Duration::from_secs(s.worker.heap_trim_secs),
        }));
    }
    if s.watchdog.interval_secs > 0 {
        sup = sup.with(Arc::new(WatchdogSweep {
            store: ctx.store.clone(),
            watchdog: crate::watchdog::Watchdog {
                topology: topology.clone(),
                clock: ctx.clock.clone(),
            },
            relay: relay.clone(),
            every: Duration::from_secs(s.watchdog.interval_secs),
            deadline,
        }));
    }
    // After each bulk load, whatever the watchdog's own interval: the watchdog over the
    // loaded tenants, then deviation detection.
    let on_load = DetectOnLoad {
        store: ctx.store.clone(),
        catalog: ctx.rules.catalog.clone(),
        settings: s.deviation.clone(),
        topology: topology.clone(),
        clock: ctx.clock.clone(),
        relay: relay.clone(),
    };
    match crate::worker::webhook_http::WebhookHttp::new(Duration::from_secs(
        s.notify.timeout_secs.max(1),
    )) {
        Ok(http) => {
            sup = sup.with(Arc::new(WebhookDelivery {
                store: ctx.store.clone(),
                globals: GlobalHook::from_settings(&s.notify.webhooks, |k| std::env::var(k).ok()),
                settings: s.notify.clone(),
                http,
                deadline,
            }));
        }
        Err(e) => tracing::error!(error = %e, "webhook delivery is off: no TLS client"),
    }
    sup.with(Arc::new(LoadFollowUp {
        store: ctx.store.clone(),
        watchdog: crate::watchdog::Watchdog {
            topology: topology.clone(),
            clock: ctx.clock.clone(),
        },
        relay: relay.clone(),
        listeners: vec![Arc::new(on_load)],
        topology: topology.clone(),
        clock: ctx.clock.clone(),
        every: Duration::from_secs(s.worker.outbox_sweep_secs.max(1)),
        deadline,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_waits_its_interval_or_fifty_times_its_last_run() {
        let every = Duration::from_secs(30);
        let next = |ms| budgeted(every, Duration::from_millis(ms));
        assert_eq!(next(5), every);
        assert_eq!(next(600), every);
        assert_eq!(next(601), Duration::from_millis(30_050));
        assert_eq!(next(7_000), Duration::from_secs(350));
        assert_eq!(budgeted(every, Duration::MAX), Duration::MAX);
    }
}
