//! The loop: keep a broker session (connection, topology, confirm channel, consumer) alive,
//! hand each delivery to a unit on its own task, rebuild the session with backoff when it
//! breaks, and shut down gracefully.

use super::health::WorkerStatus;
use super::relay::Relay;
use super::unit::{self, Context, Disposition, Incoming, Processed};
use super::{Failure, Planner, Rules};
use crate::broker::{self, BrokerError, ConfirmedPublisher, Outgoing, Topology};
use crate::config::Settings;
use crate::results::ReportDisposition;
use crate::store::Store;
use crate::telemetry::metrics;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Fault injection for tests: what to do right after a cycle committed, before the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    Continue,
    /// Close the broker connection without acking (a crash between commit and ack).
    DropConnection,
}

pub type AfterCommit = Arc<dyn Fn(&Processed) -> HookAction + Send + Sync>;
/// Runs inside the unit's task before the cycle; a panic here is a panic in the unit.
pub type BeforeCycle = Arc<dyn Fn(&Incoming) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    pub before_cycle: Option<BeforeCycle>,
    pub after_commit: Option<AfterCommit>,
}

pub struct Worker {
    ctx: Arc<Context>,
    relay: Arc<Relay>,
    status: Arc<WorkerStatus>,
    hooks: Hooks,
    name: String,
}

/// One connection's worth of broker state.
struct Session {
    conn: Arc<Connection>,
    publisher: Arc<ConfirmedPublisher>,
    consume: Channel,
    consumer: Consumer,
    /// Executor reports, on their own channel and prefetch.
    results: Channel,
    results_consumer: Consumer,
}

enum End {
    Shutdown,
    Broken(String),
}

/// A stalled broker (memory or disk alarm) may never answer a close; shutdown must not hang.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may stay silent (no probe answered, no delivery) before the session
/// counts as broken: seconds, not the two missed heartbeats lapin waits for.
const BROKER_SILENT: Duration = Duration::from_secs(10);

/// A `basic.qos` round trip on the consume channel, at most one in flight, off the loop so a
/// link busy with big deliveries delays the answer without stalling the loop.
#[derive(Default)]
struct BrokerProbe(Option<tokio::task::JoinHandle<Result<(), lapin::Error>>>);

impl BrokerProbe {
    fn tick(&mut self, ch: &Channel, prefetch: u16, status: &WorkerStatus) -> Result<(), String> {
        if let Some(p) = &self.0
            && p.is_finished()
        {
            match self.0.take().map(futures_util::FutureExt::now_or_never) {
                Some(Some(Ok(Ok(())))) => status.broker_answered(),
                Some(Some(Ok(Err(e)))) => return Err(format!("broker probe failed: {e}")),
                _ => {}
            }
        }
        if self.0.is_none() {
            let ch = ch.clone();
            self.0 = Some(tokio::spawn(async move {
                ch.basic_qos(prefetch, BasicQosOptions::default()).await
            }));
        }
        match status.snapshot().broker_ok_age {
            Some(age) if age > BROKER_SILENT => Err(format!(
                "broker silent for {:.0}s (no probe answer, no delivery)",
                age.as_secs_f64()
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for BrokerProbe {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.abort();
        }
    }
}

fn reconnect_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .without_max_times()
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

    /// Opens a session within `amqp.connect_timeout_secs`: a broker that accepts TCP but
    /// never finishes the handshake costs one bounded attempt, not a silent hang.
    async fn open(&self) -> Result<Session, BrokerError> {
        let deadline = Duration::from_secs(self.ctx.settings.amqp.connect_timeout_secs.max(1));
        tokio::time::timeout(deadline, self.open_unbounded())
            .await
            .unwrap_or(Err(BrokerError::Timeout("broker connect and handshake")))
    }

    async fn open_unbounded(&self) -> Result<Session, BrokerError> {
        let settings = &self.ctx.settings.amqp;
        let conn = broker::connect(settings, &self.name).await?;
        self.topology().declare_on(&conn).await?;
        let publisher = Arc::new(ConfirmedPublisher::open(&conn).await?);
        // A body past the limit is dropped by lapin as it arrives (vendor/lapin/PATCH.md): a
        // prefetch window of oversized messages costs the limit each, not their size.
        let keep = Some(settings.max_message_bytes.saturating_add(1));
        let consume = conn.create_channel().await?;
        consume.set_max_body_size(keep);
        consume
            .basic_qos(settings.concurrency.max(1), BasicQosOptions::default())
            .await?;
        let consumer = consume
            .basic_consume(
                self.topology().triggers_queue.as_str().into(),
                format!("{}/consumer", self.name).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let results = conn.create_channel().await?;
        results.set_max_body_size(keep);
        results
            .basic_qos(settings.results_prefetch.max(1), BasicQosOptions::default())
            .await?;
        let results_consumer = results
            .basic_consume(
                self.topology().results_queue.as_str().into(),
                format!("{}/results", self.name).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Session {
            conn: Arc::new(conn),
            publisher,
            consume,
            consumer,
            results,
            results_consumer,
        })
    }

    /// Runs until `shutdown` is cancelled, then drains and returns. Broker and database
    /// outages are waited out; only a permanent broker error (`!is_retryable`: bad URL,
    /// refused access, a declare clashing with existing queues) is returned.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Failure> {
        let stop_sweeper = CancellationToken::new();
        let sweeper = tokio::spawn(self.relay.clone().run_sweeper(stop_sweeper.clone()));
        let watch_every = self.ctx.settings.watchdog.interval_secs;
        let watcher = (watch_every > 0).then(|| {
            tokio::spawn(watch_loop(
                self.ctx.clone(),
                self.relay.clone(),
                self.status.clone(),
                Duration::from_secs(watch_every),
                stop_sweeper.clone(),
            ))
        });
        let prober = tokio::spawn(probe_database(
            self.ctx.store.clone(),
            self.status.clone(),
            stop_sweeper.clone(),
        ));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut backoff = reconnect_policy().build();
        let mut session: Option<Session> = None;
        let mut fatal = None;
        let mut attempt = 0u32;
        let broker_addr = broker::watch_address(&self.ctx.settings.amqp);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            attempt += 1;
            let mut s = match self.open().await {
                Ok(s) => s,
                Err(e) if !e.is_retryable() => {
                    tracing::error!(error = %e, "broker session cannot open; giving up");
                    fatal = Some(e);
                    break;
                }
                Err(e) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(15));
                    tracing::warn!(error = %e, attempt, ?wait, "broker session failed to open; retrying");
                    match pause(wait, broker_addr.as_ref(), e.is_refused(), &shutdown).await {
                        Pause::Shutdown => break,
                        Pause::Elapsed => {}
                        Pause::Reachable => backoff = reconnect_policy().build(),
                    }
                    continue;
                }
            };
            tracing::info!(connection = %self.name, queue = %self.topology().triggers_queue,
                prefetch = self.ctx.settings.amqp.concurrency, attempt, "consuming triggers");
            attempt = 0;
            self.relay.publisher.set(Some(s.publisher.clone())).await;
            self.status.set_broker_connected(true);
            // What the outage left in the outbox goes out now, not at the next interval.
            self.relay.kick();
            let opened = Instant::now();
            let end = self.consume(&mut s, &mut tasks, &shutdown).await;
            self.status.set_broker_connected(false);
            match end {
                End::Shutdown => {
                    session = Some(s);
                    break;
                }
                End::Broken(why) => {
                    metrics::reconnect();
                    self.relay.publisher.set(None).await;
                    let _ =
                        tokio::time::timeout(CLOSE_TIMEOUT, s.conn.close(200, "rebuilding".into()))
                            .await;
                    if opened.elapsed() > Duration::from_secs(30) {
                        backoff = reconnect_policy().build();
                    }
                    let wait = backoff.next().unwrap_or(Duration::from_secs(15));
                    tracing::warn!(reason = %why, ?wait, "broker session broke; rebuilding");
                    match pause(wait, broker_addr.as_ref(), false, &shutdown).await {
                        Pause::Shutdown => break,
                        Pause::Elapsed => {}
                        Pause::Reachable => backoff = reconnect_policy().build(),
                    }
                }
            }
        }
        self.drain(session, tasks, stop_sweeper, sweeper).await;
        if let Some(w) = watcher {
            let _ = w.await;
        }
        let _ = prober.await;
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
        let prefetch = self.ctx.settings.amqp.concurrency.max(1);
        let mut probe = BrokerProbe::default();
        loop {
            // While the database is unreachable nothing more is taken from the consumers: the
            // deliveries stay with lapin and the broker, uncounted, until it answers again.
            let open = !status.db_down();
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = status.db_up(), if !open => {}
                _ = health.tick() => {
                    status.loop_ticked();
                    if !s.conn.status().connected() {
                        return End::Broken("connection is no longer connected".into());
                    }
                    if !s.consume.status().connected() {
                        return End::Broken("consumer channel closed".into());
                    }
                    if !s.results.status().connected() {
                        return End::Broken("results channel closed".into());
                    }
                    // The broker closes the confirm channel on its own (a 404 for a deleted
                    // exchange), or a confirm went missing: without a new session nothing
                    // would be published again.
                    if !s.publisher.is_usable() {
                        return End::Broken("publisher channel unusable".into());
                    }
                    if let Err(why) = probe.tick(&s.consume, prefetch, &status) {
                        return End::Broken(why);
                    }
                }
                next = s.consumer.next(), if open => match next {
                    Some(Ok(d)) => {
                        status.broker_answered();
                        // Every log line of this delivery, the store's and the relay's
                        // included, carries these ids; the unit fills in tenant and cycle.
                        let span = tracing::info_span!(
                            "cycle",
                            message_id = %d.properties.message_id().as_ref().map_or("", |m| m.as_str()),
                            tenant_id = tracing::field::Empty,
                            cycle_id = tracing::field::Empty,
                        );
                        tasks.spawn(
                            handle(
                                self.ctx.clone(),
                                self.relay.clone(),
                                self.status.clone(),
                                self.hooks.clone(),
                                s.conn.clone(),
                                s.publisher.clone(),
                                d,
                            )
                            .instrument(span),
                        );
                    }
                    Some(Err(e)) => return End::Broken(format!("consumer error: {e}")),
                    // lapin can end the stream without an error; without a shutdown request
                    // that is a failure like any other.
                    None => return End::Broken("consumer stream ended".into()),
                },
                next = s.results_consumer.next(), if open => match next {
                    Some(Ok(d)) => {
                        status.broker_answered();
                        let span = tracing::info_span!(
                            "report",
                            message_id = %d.properties.message_id().as_ref().map_or("", |m| m.as_str()),
                            tenant_id = tracing::field::Empty,
                            cycle_id = tracing::field::Empty,
                            action_id = tracing::field::Empty,
                        );
                        let max = self.ctx.settings.amqp.max_message_bytes;
                        let after = in_order.next(subject_of(&d.data, max));
                        let (ctx, publisher) = (self.ctx.clone(), s.publisher.clone());
                        let status = self.status.clone();
                        tasks.spawn(
                            async move {
                                let done = after.wait().await;
                                handle_report(ctx, status, publisher, d).await;
                                done.finish();
                            }
                            .instrument(span),
                        );
                    }
                    Some(Err(e)) => return End::Broken(format!("results consumer error: {e}")),
                    None => return End::Broken("results consumer stream ended".into()),
                },
            }
        }
    }

    /// Stop consuming, let in-flight cycles finish within the grace period, flush the outbox,
    /// close the channels (flushing pending confirms) and the connection.
    async fn drain(
        &self,
        session: Option<Session>,
        mut tasks: JoinSet<()>,
        stop_sweeper: CancellationToken,
        sweeper: tokio::task::JoinHandle<()>,
    ) {
        tracing::info!(in_flight = tasks.len(), "shutting down");
        if let Some(s) = &session {
            let tag = format!("{}/consumer", self.name);
            let _ = s
                .consume
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
            let tag = format!("{}/results", self.name);
            let _ = s
                .results
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
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
        stop_sweeper.cancel();
        let _ = sweeper.await;
        if session.is_some() {
            match tokio::time::timeout(grace.max(Duration::from_secs(1)), self.relay.sweep(true))
                .await
            {
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
            s.publisher.close().await;
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, s.consume.close(200, "shutdown".into())).await;
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, s.results.close(200, "shutdown".into())).await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, s.conn.close(200, "shutdown".into())).await;
        }
        tracing::info!("worker stopped");
    }
}

/// The unit's view of a delivery. The body is moved out, not copied: a trigger of
/// `amqp.max_message_bytes` costs its size once.
fn incoming(d: &mut Delivery) -> Incoming {
    let p = &d.properties;
    Incoming {
        message_id: p.message_id().as_ref().map(|s| s.to_string()),
        content_type: p.content_type().as_ref().map(|s| s.to_string()),
        reply_to: p.reply_to().as_ref().map(|s| s.to_string()),
        correlation_id: p.correlation_id().as_ref().map(|s| s.to_string()),
        redelivered: d.redelivered,
        body: std::mem::take(&mut d.data),
    }
}

/// One delivery, end to end. The ack happens only after `process` returned, i.e. after the
/// store committed (or decided the delivery is dead).
async fn handle(
    ctx: Arc<Context>,
    relay: Arc<Relay>,
    status: Arc<WorkerStatus>,
    hooks: Hooks,
    conn: Arc<Connection>,
    publisher: Arc<ConfirmedPublisher>,
    mut d: Delivery,
) {
    let inc = Arc::new(incoming(&mut d));
    if inc.redelivered {
        metrics::redelivery();
    }
    let processed = loop {
        let running = status.unit_started();
        let (c2, i2, before) = (ctx.clone(), inc.clone(), hooks.before_cycle.clone());
        let work = async move {
            if let Some(h) = before {
                h(&i2);
            }
            unit::process(&c2, &i2).await
        }
        .in_current_span();
        let processed = match unit::guarded(work).await {
            Ok(p) => p,
            Err(what) => unit::panicked(&ctx, &inc, what),
        };
        drop(running);
        match &processed.disposition {
            // Held, not requeued: the delivery count stays where it is.
            Disposition::Unavailable(why) => {
                status.report_unreachable(why);
                status.db_up().await;
            }
            _ => break processed,
        }
    };
    if processed.committed
        && let Some(hook) = &hooks.after_commit
        && hook(&processed) == HookAction::DropConnection
    {
        tracing::warn!(message_id = ?inc.message_id, "fault injection: dropping the connection before ack");
        let _ = conn.close(320, "fault injection".into()).await;
        return;
    }
    let message_id = inc.message_id.clone();
    let acked = match &processed.disposition {
        Disposition::Ack => d.acker.ack(BasicAckOptions::default()).await,
        Disposition::DeadLetter { reason, detail } => {
            // The unit's task is over, so the body is ours alone again: moved, not copied.
            let body = Arc::try_unwrap(inc).map_or_else(|shared| shared.body.clone(), |i| i.body);
            let exchange = &ctx.planner.topology().dead_letter_exchange;
            dead_letter(&publisher, &d, exchange, reason, detail, body).await
        }
        // reject, not nack: RabbitMQ 4.3+ may not count a requeuing nack toward the delivery
        // limit, and the limit is what dead-letters a trigger that keeps failing.
        Disposition::Requeue(_) => d.acker.reject(BasicRejectOptions { requeue: true }).await,
        Disposition::Unavailable(_) => unreachable_disposition(),
    };
    match acked {
        Ok(true) => {}
        // The channel went away: the broker redelivers, and the store replays the cycle.
        Ok(false) => {
            tracing::warn!(?message_id, "delivery could not be settled (channel gone)")
        }
        Err(e) => {
            tracing::warn!(?message_id, error = %e, "settling the delivery failed")
        }
    }
    if !processed.relay.is_empty() {
        relay.publish(processed.relay).await;
    }
    relay.publish_direct(&processed.direct).await;
}

/// The loops above never leave with `Unavailable`; settle nothing if one ever did.
fn unreachable_disposition() -> Result<bool, lapin::Error> {
    Ok(false)
}

/// Moves a dead delivery to `exchange` as a copy carrying why (`x-revenue-os-reason`,
/// `x-revenue-os-detail`), and acks the original only once the broker confirmed the copy;
/// an unconfirmed copy requeues the original, so nothing is lost either way. A `too_large`
/// body was cut by lapin, so a copy would lose it: that one is rejected instead, and the
/// queue's dead-letter exchange moves the original, whole (`x-first-death-reason: rejected`,
/// which `dlq list` shows as `too_large`).
async fn dead_letter(
    publisher: &ConfirmedPublisher,
    d: &Delivery,
    exchange: &str,
    reason: &str,
    detail: &str,
    body: Vec<u8>,
) -> Result<bool, lapin::Error> {
    if reason == crate::broker::dlq::UNREAD {
        return d.acker.reject(BasicRejectOptions { requeue: false }).await;
    }
    let copy = dead_letter_copy(d, exchange, reason, detail, body);
    match publisher.publish(&copy).await {
        Ok(()) => d.acker.ack(BasicAckOptions::default()).await,
        Err(e) => {
            tracing::warn!(error = %e, reason, "dead-letter copy not confirmed; requeued");
            d.acker.reject(BasicRejectOptions { requeue: true }).await
        }
    }
}

/// One report delivery: record it, then ack; an unusable one is copied to the results dead
/// queue with its reason (`x-revenue-os-reason`) and acked only once the broker confirmed
/// the copy, so nothing is lost.
async fn handle_report(
    ctx: Arc<Context>,
    status: Arc<WorkerStatus>,
    publisher: Arc<ConfirmedPublisher>,
    mut d: Delivery,
) {
    let p = &d.properties;
    let message_id = p.message_id().as_ref().map(|m| m.to_string());
    let content_type = p.content_type().as_ref().map(|t| t.to_string());
    let patience = crate::results::Patience {
        retries: ctx.settings.worker.retry_max_attempts,
        deadline: ctx.settings.database.call_timeout(),
    };
    let disposition = loop {
        let envelope = crate::results::Envelope {
            message_id: message_id.as_deref(),
            content_type: content_type.as_deref(),
            body: &d.data,
            max_bytes: ctx.settings.amqp.max_message_bytes,
        };
        let running = status.unit_started();
        let disposition =
            crate::results::process(&ctx.store, &ctx.clock, &envelope, patience).await;
        drop(running);
        match disposition {
            ReportDisposition::Unavailable(why) => {
                status.report_unreachable(&why);
                status.db_up().await;
            }
            other => break other,
        }
    };
    let settled = match disposition {
        ReportDisposition::Ack => d.acker.ack(BasicAckOptions::default()).await,
        ReportDisposition::Requeue(_) => d.acker.reject(BasicRejectOptions { requeue: true }).await,
        ReportDisposition::DeadLetter { reason, detail } => {
            let body = std::mem::take(&mut d.data);
            let exchange = &ctx.planner.topology().results_dead_letter_exchange;
            dead_letter(&publisher, &d, exchange, reason, &detail, body).await
        }
        ReportDisposition::Unavailable(_) => unreachable_disposition(),
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "settling the report failed; the broker redelivers it");
    }
}

/// The delivery as it arrived (its body handed over by the caller), plus why it is dead.
/// The original `message_id`, `correlation_id`, `reply_to` and headers are kept, so
/// `dlq replay` republishes it as it came.
fn dead_letter_copy(
    d: &Delivery,
    exchange: &str,
    reason: &str,
    detail: &str,
    body: Vec<u8>,
) -> Outgoing {
    let p = &d.properties;
    let mut headers: Vec<(String, String)> = p
        .headers()
        .as_ref()
        .map(|h| {
            h.inner()
                .keys()
                .filter(|k| !k.as_str().starts_with("x-"))
                .filter_map(|k| broker::header(p, k.as_str()).map(|v| (k.to_string(), v)))
                .collect()
        })
        .unwrap_or_default();
    headers.extend([
        ("x-revenue-os-reason".to_owned(), reason.to_owned()),
        (
            "x-revenue-os-detail".to_owned(),
            detail.chars().take(500).collect(),
        ),
        (
            "x-original-routing-key".to_owned(),
            d.routing_key.to_string(),
        ),
    ]);
    if let Some(t) = p.content_type() {
        headers.push(("x-original-content-type".to_owned(), t.to_string()));
    }
    Outgoing {
        exchange: exchange.to_owned(),
        routing_key: d.routing_key.to_string(),
        message_id: p.message_id().as_ref().map_or_else(
            || broker::derived_message_id(d.routing_key.as_str(), &body),
            |m| m.to_string(),
        ),
        headers,
        body,
        mandatory: false,
        persistent: true,
        correlation_id: p.correlation_id().as_ref().map(|c| c.to_string()),
        reply_to: p.reply_to().as_ref().map(|r| r.to_string()),
    }
}

/// The `subject` of a report body, if it has one (the full decode happens in the task). A
/// body over the limit is not read: the task dead-letters it.
fn subject_of(body: &[u8], max_bytes: usize) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: String,
    }
    if body.len() > max_bytes {
        return None;
    }
    serde_json::from_slice::<Subject>(body)
        .ok()
        .map(|s| s.subject)
}

/// Reports on one action are handled in the order they were delivered: each waits for the
/// one before it on the same subject. An executor's `acknowledged` then `applied` are judged
/// in that order by this worker (across workers the lifecycle still copes with any order).
#[derive(Default)]
struct SubjectOrder {
    last: std::collections::HashMap<String, tokio::sync::oneshot::Receiver<()>>,
}

struct Turn {
    previous: Option<tokio::sync::oneshot::Receiver<()>>,
    done: tokio::sync::oneshot::Sender<()>,
}

struct Done(tokio::sync::oneshot::Sender<()>);

impl SubjectOrder {
    fn next(&mut self, subject: Option<String>) -> Turn {
        let (done, rx) = tokio::sync::oneshot::channel();
        let previous = match subject {
            Some(s) => self.last.insert(s, rx),
            None => None,
        };
        if self.last.len() > 4096 {
            // Forget subjects whose last report is finished.
            self.last.retain(|_, rx| {
                matches!(
                    rx.try_recv(),
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty)
                )
            });
        }
        Turn { previous, done }
    }
}

impl Turn {
    /// Waits for the previous report on the subject (finished, or its task gone).
    async fn wait(self) -> Done {
        if let Some(p) = self.previous {
            let _ = p.await;
        }
        Done(self.done)
    }
}

impl Done {
    fn finish(self) {
        let _ = self.0.send(());
    }
}

/// The watchdog inside the worker: a sweep every `every`. Workers share it through the
/// store's `SKIP LOCKED` claims; reverts it writes are relayed at once.
async fn watch_loop(
    ctx: Arc<Context>,
    relay: Arc<Relay>,
    status: Arc<WorkerStatus>,
    every: Duration,
    stop: CancellationToken,
) {
    let watchdog = crate::watchdog::Watchdog {
        topology: ctx.planner.topology().clone(),
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = ctx.settings.database.call_timeout();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if status.db_down() {
            continue;
        }
        let swept = crate::watchdog::sweep(&ctx.store, &watchdog, None);
        match crate::store::bounded(deadline * 4, swept).await {
            Ok(done) => {
                let rows: Vec<_> = done.into_iter().flat_map(|w| w.outbox).collect();
                if !rows.is_empty() {
                    relay.publish(rows).await;
                }
            }
            Err(e) if e.is_unreachable() => {
                status.report_unreachable(&e);
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "watchdog sweep failed; the next one retries"),
        }
        let overdue = ctx.store.oldest_overdue_evaluation_secs();
        if let Ok(secs) = crate::store::bounded(deadline, overdue).await {
            metrics::watchdog_overdue(secs);
        }
        // Held actions past their time expire (or are superseded by a newer cycle).
        let ttl = ctx.settings.approval.ttl_hours;
        let expire = crate::approvals::sweep(&ctx.store, ttl, ctx.clock.now());
        if let Err(e) = crate::store::bounded(deadline, expire).await {
            tracing::warn!(error = %e, "approval expiry sweep failed; the next one retries");
        }
    }
}

/// How a wait between broker attempts ended.
enum Pause {
    Shutdown,
    Elapsed,
    /// The broker's port refused connections during the wait and now accepts them: it came
    /// back, so retry at once with a fresh backoff.
    Reachable,
}

/// Waits `wait` before the next broker attempt, watching the broker's TCP port meanwhile, so
/// that a restarted broker is used within a fraction of a second rather than at the end of a
/// wait chosen during the outage. `refused`: the last attempt found the port closed.
async fn pause(
    wait: Duration,
    addr: Option<&(String, u16)>,
    refused: bool,
    shutdown: &CancellationToken,
) -> Pause {
    let until = tokio::time::Instant::now() + wait;
    let mut was_closed = refused;
    loop {
        let step = until.saturating_duration_since(tokio::time::Instant::now());
        if step.is_zero() {
            return Pause::Elapsed;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Pause::Shutdown,
            _ = tokio::time::sleep(step.min(Duration::from_millis(250))) => {}
        }
        if let Some((host, port)) = addr {
            let open = broker::reachable(host, *port, Duration::from_millis(500)).await;
            if open && was_closed {
                tracing::info!("broker accepts connections again; reconnecting now");
                return Pause::Reachable;
            }
            was_closed |= !open;
        }
    }
}

/// Keeps the database's last answer fresh for `/readyz` and, while the gate is shut, probes
/// with backoff until the database answers, then opens it. One line when an outage starts
/// (written by whoever found it), one a minute while it lasts, one when it ends.
async fn probe_database(store: Store, status: Arc<WorkerStatus>, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(1);
    const PING: Duration = Duration::from_secs(2);
    let probe_backoff = || {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build()
    };
    let mut backoff = probe_backoff();
    let mut outage: Option<(Instant, u32, Instant)> = None;
    loop {
        let wait = match outage {
            None => {
                let fresh = status.snapshot().db_ok_age.is_some_and(|a| a < EVERY);
                if !fresh && !status.db_down() {
                    match crate::store::bounded(PING, store.ping()).await {
                        Ok(()) => status.db_answered(),
                        Err(e) if e.is_unreachable() => status.report_unreachable(&e),
                        Err(e) => tracing::warn!(error = %e, "database probe failed"),
                    }
                }
                if status.db_down() {
                    let now = Instant::now();
                    outage = Some((now, 0, now));
                    Duration::ZERO
                } else {
                    EVERY
                }
            }
            Some((since, tries, logged)) => match crate::store::bounded(PING, store.ping()).await {
                Ok(()) => {
                    status.db_answered();
                    tracing::info!(
                        down_secs = since.elapsed().as_secs(),
                        probes = tries + 1,
                        "database answers again; consumption resumed"
                    );
                    outage = None;
                    backoff = probe_backoff();
                    EVERY
                }
                Err(e) => {
                    let mut logged = logged;
                    if logged.elapsed() >= Duration::from_secs(60) {
                        tracing::warn!(error = %e, down_secs = since.elapsed().as_secs(),
                                probes = tries + 1, "database still unreachable");
                        logged = Instant::now();
                    }
                    outage = Some((since, tries + 1, logged));
                    backoff.next().unwrap_or(Duration::from_secs(5))
                }
            },
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = status.db_lost(), if outage.is_none() => {}
        }
    }
}
