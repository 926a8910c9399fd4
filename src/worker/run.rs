//! The loop: keep a broker session alive, hand each delivery to its task, rebuild the session
//! with backoff when it breaks, and shut down gracefully. Units of work (`deliveries`,
//! `unit`), settling (`settle`), the session (`session`) and periodic work (`periodic`) live
//! in their own files.

use super::deliveries::{self, Hooks, Shared, SubjectOrder};
use super::health::WorkerStatus;
use super::periodic;
use super::relay::Relay;
use super::session::{self, BrokerProbe, Pause, Session};
use super::turns::ReportTurns;
use super::unit::Context;
use super::{Failure, Planner, Rules};
use crate::broker::{self, Topology};
use crate::config::Settings;
use crate::store::Store;
use crate::telemetry::metrics;
use backon::BackoffBuilder;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Worker {
    ctx: Arc<Context>,
    relay: Arc<Relay>,
    status: Arc<WorkerStatus>,
    hooks: Hooks,
    name: String,
}

enum End {
    Shutdown,
    Broken(String),
}

impl Worker {
    /// A worker judging cycles by `rules` (see `app::rules` for the ones from settings).
    pub fn new(settings: Settings, store: Store, rules: Rules) -> Self {
        let topology = Topology::from_settings(&settings.amqp, &rules.catalog);
        let sweep = Duration::from_secs(settings.worker.outbox_sweep_secs.max(1));
        let name = broker::connection_name(&settings.amqp.prefix, "worker");
        let status = Arc::new(WorkerStatus::default());
        let deadline = settings.database.call_timeout();
        let relay = Arc::new(Relay::new(store.clone(), sweep, deadline, status.clone()));
        Self {
            ctx: Arc::new(Context {
                store,
                clock: crate::clock::Clock::system(),
                rules,
                settings,
                planner: Planner::new(topology),
            }),
            relay,
            status,
            hooks: Hooks::default(),
            name,
        }
    }

    /// Runs cycles and takes reports by this clock (a simulation's) instead of the system's.
    /// Call before `run`.
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.clock = clock;
        }
        self
    }

    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    pub fn status(&self) -> Arc<WorkerStatus> {
        self.status.clone()
    }

    /// The AMQP connection name (`<prefix>/worker/<uuid>`), kept across reconnects.
    pub fn connection_name(&self) -> &str {
        &self.name
    }

    pub fn topology(&self) -> &Topology {
        self.ctx.planner.topology()
    }

    /// Runs until `shutdown` is cancelled, then drains and returns. Broker and database
    /// outages are waited out; only a permanent broker error (`!is_retryable`: bad URL,
    /// refused access, a declare clashing with existing queues) is returned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Failure> {
        let services = periodic::for_worker(&self.ctx, &self.relay, &self.status).start();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut backoff = session::reconnect_policy().build();
        let (mut session, mut fatal, mut attempt) = (None, None, 0u32);
        let broker_addr = broker::watch_address(&self.ctx.settings.amqp);
        while !shutdown.is_cancelled() {
            attempt += 1;
            let opened = Session::open(&self.ctx.settings.amqp, self.topology(), &self.name).await;
            let (wait, refused) = match opened {
                Ok(mut s) => {
                    tracing::info!(connection = %self.name, queue = %self.topology().triggers_queue,
                        prefetch = self.ctx.settings.amqp.concurrency, attempt, "consuming triggers");
                    attempt = 0;
                    self.relay.publisher.set(Some(s.publisher.clone())).await;
                    self.status.set_broker_connected(true);
                    // What the outage left in the outbox goes out now, not at the next interval.
                    self.relay.kick();
                    let since = Instant::now();
                    let end = self.consume(&mut s, &mut tasks, &shutdown).await;
                    self.status.set_broker_connected(false);
                    let End::Broken(why) = end else {
                        session = Some(s);
                        break;
                    };
                    metrics::reconnect();
                    self.relay.publisher.set(None).await;
                    s.abandon().await;
                    if since.elapsed() > Duration::from_secs(30) {
                        backoff = session::reconnect_policy().build();
                    }
                    let wait = backoff.next().unwrap_or(Duration::from_secs(15));
                    tracing::warn!(reason = %why, ?wait, "broker session broke; rebuilding");
                    (wait, false)
                }
                Err(e) if !e.is_retryable() => {
                    tracing::error!(error = %e, "broker session cannot open; giving up");
                    fatal = Some(e);
                    break;
                }
                Err(e) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(15));
                    if e.is_refused() {
                        let at = broker_addr
                            .as_ref()
                            .map_or(String::new(), |(h, p)| format!("{h}:{p}"));
                        tracing::warn!(error = %e, attempt, ?wait,
                            "RabbitMQ is not reachable at {at}; start it with: {}; retrying",
                            broker::START_COMMAND);
                    } else {
                        tracing::warn!(error = %e, attempt, ?wait, "broker session failed to open; retrying");
                    }
                    (wait, e.is_refused())
                }
            };
            match session::pause(wait, broker_addr.as_ref(), refused, &shutdown).await {
                Pause::Shutdown => break,
                Pause::Elapsed => {}
                Pause::Reachable => backoff = session::reconnect_policy().build(),
            }
        }
        self.drain(session, tasks, services).await;
        fatal.map_or(Ok(()), |e| Err(Failure::Broker(e)))
    }

    async fn consume(
        &self,
        s: &mut Session,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> End {
        let mut health = tokio::time::interval(Duration::from_secs(1));
        let mut in_order = SubjectOrder::default();
        let status = self.status.clone();
        let mut probe = BrokerProbe::new(self.ctx.settings.amqp.concurrency.max(1));
        let batch_size = self.ctx.settings.worker.cycle_batch.max(1);
        let report_batch = self.ctx.settings.worker.report_batch.max(1);
        // A report batch holds a slot until it is settled; with none free the results consumer
        // is not read, and what arrives meanwhile is the next batch.
        let report_slots = Arc::new(Semaphore::new(self.ctx.settings.worker.report_tasks.max(1)));
        let mut turns = ReportTurns::new(Duration::from_millis(
            self.ctx.settings.worker.report_turn_ms,
        ));
        // A trigger task holds a slot until its rows are published and marked, not only until
        // its ack: the ack lets the broker send more, and without slots the tasks waiting to
        // publish would grow without bound.
        let concurrency = usize::from(self.ctx.settings.amqp.concurrency.max(1));
        let trigger_slots = Arc::new(Semaphore::new(concurrency));
        let shared = Shared {
            ctx: self.ctx.clone(),
            relay: self.relay.clone(),
            status: self.status.clone(),
            hooks: self.hooks.clone(),
            conn: s.conn.clone(),
            publisher: s.publisher.clone(),
        };
        loop {
            // While the database is unreachable nothing more is taken from the consumers: the
            // deliveries stay with lapin and the broker, uncounted, until it answers again.
            let open = !status.db_down();
            // Reports held back by running cycles: a trigger task's end (the `join_next` arm)
            // or their turn's time wakes the loop to look again.
            let now = Instant::now();
            let cycles_running = trigger_slots.available_permits() < concurrency;
            let reports_turn = turns.open(cycles_running, now);
            let turn_at = turns.next(now).unwrap_or(now);
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = status.db_up(), if !open => {}
                _ = health.tick() => {
                    status.loop_ticked();
                    if let Err(why) = s.check(&mut probe, &status) {
                        return End::Broken(why);
                    }
                }
                next = s.consumer.next(), if open && trigger_slots.available_permits() > 0 => match next {
                    Some(Ok(d)) => {
                        status.broker_answered();
                        // Whatever else is already waiting goes with it, up to the batch size;
                        // nothing is waited for, so a lone trigger runs at once.
                        let mut batch = vec![d];
                        let ended = take_waiting(&mut s.consumer, &mut batch, batch_size, "consumer");
                        spawn_in_slot(tasks, &trigger_slots, deliveries::triggers(shared.clone(), batch));
                        if let Some(end) = ended {
                            return end;
                        }
                    }
                    Some(Err(e)) => return End::Broken(format!("consumer error: {e}")),
                    // lapin can end the stream without an error; without a shutdown request
                    // that is a failure like any other.
                    None => return End::Broken("consumer stream ended".into()),
                },
                _ = tokio::time::sleep_until(turn_at.into()), if !reports_turn => {}
                next = s.results_consumer.next(), if open && reports_turn && report_slots.available_permits() > 0 => match next {
                    Some(Ok(d)) => {
                        status.broker_answered();
                        turns.taken(Instant::now());
                        let mut batch = vec![d];
                        let ended = take_waiting(&mut s.results_consumer, &mut batch, report_batch, "results consumer");
                        let work = deliveries::reports(shared.clone(), &mut in_order, batch);
                        spawn_in_slot(tasks, &report_slots, work);
                        if let Some(end) = ended {
                            return end;
                        }
                    }
                    Some(Err(e)) => return End::Broken(format!("results consumer error: {e}")),
                    None => return End::Broken("results consumer stream ended".into()),
                },
            }
        }
    }

    /// Stop consuming, let in-flight cycles finish within the grace period, stop the periodic
    /// services, flush the outbox, close the channels (flushing pending confirms) and the
    /// connection.
    async fn drain(
        &self,
        session: Option<Session>,
        mut tasks: JoinSet<()>,
        services: periodic::Running,
    ) {
        tracing::info!(in_flight = tasks.len(), "shutting down");
        if let Some(s) = &session {
            s.cancel_consumers().await;
        }
        let grace = self.ctx.settings.shutdown_grace();
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                ?grace,
                "grace period over; abandoning in-flight triggers (they will be redelivered)"
            );
            tasks.abort_all();
        }
        services.stop().await;
        if session.is_some() {
            let flush = self.relay.sweep(true);
            match tokio::time::timeout(grace.max(Duration::from_secs(1)), flush).await {
                Ok(Ok(Some(r))) => {
                    tracing::info!(published = r.published, failed = r.failed, "outbox flushed")
                }
                Ok(Ok(None)) => tracing::warn!("outbox not flushed: no usable publisher"),
                Ok(Err(e)) => tracing::warn!(error = %e, "outbox flush failed"),
                Err(_) => tracing::warn!("outbox flush timed out"),
            }
        }
        self.relay.publisher.set(None).await;
        if let Some(s) = session {
            s.close().await;
        }
        tracing::info!("worker stopped");
    }
}

/// Spawns `work` holding one of `slots` until it ends. A slot is free: the arm that calls this
/// is guarded by `available_permits() > 0`, and only the consume loop takes slots.
fn spawn_in_slot(
    tasks: &mut JoinSet<()>,
    slots: &Arc<Semaphore>,
    work: impl Future<Output = ()> + Send + 'static,
) {
    let slot = slots.clone().try_acquire_owned().ok();
    tasks.spawn(async move {
        let _slot = slot;
        work.await
    });
}

/// Adds to `batch` the deliveries `consumer` already holds, up to `size`; nothing is waited
/// for. The session's end when the consumer failed or ended meanwhile.
fn take_waiting(
    consumer: &mut lapin::Consumer,
    batch: &mut Vec<Delivery>,
    size: usize,
    name: &str,
) -> Option<End> {
    while batch.len() < size {
        match consumer.next().now_or_never() {
            Some(Some(Ok(d))) => batch.push(d),
            Some(Some(Err(e))) => return Some(End::Broken(format!("{name} error: {e}"))),
            Some(None) => return Some(End::Broken(format!("{name} stream ended"))),
            None => return None,
        }
    }
    None
}
