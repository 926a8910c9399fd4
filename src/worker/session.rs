//! One broker session: the connection, the declared topology, the confirm-mode publisher and
//! the two consumers (triggers, executor reports). Also how a session is judged alive (the
//! liveness probe) and how the loop waits before opening the next one.

use super::health::WorkerStatus;
use crate::broker::{self, BrokerError, ConfirmedPublisher, Topology};
use crate::config::AmqpSettings;
use backon::ExponentialBuilder;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A stalled broker (memory or disk alarm) may never answer a close; shutdown must not hang.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may stay silent (no probe answered, no delivery) before the session
/// counts as broken: seconds, not the two missed heartbeats lapin waits for.
const BROKER_SILENT: Duration = Duration::from_secs(10);

/// One connection's worth of broker state.
pub struct Session {
    pub conn: Arc<Connection>,
    pub publisher: Arc<ConfirmedPublisher>,
    pub consume: Channel,
    pub consumer: Consumer,
    /// Executor reports, on their own channel and prefetch.
    pub results: Channel,
    pub results_consumer: Consumer,
    /// Consumer tags start with this (`<connection name>`).
    name: String,
}

impl Session {
    /// Opens a session within `amqp.connect_timeout_secs`: a broker that accepts TCP but
    /// never finishes the handshake costs one bounded attempt, not a silent hang.
    pub async fn open(
        settings: &AmqpSettings,
        topology: &Topology,
        name: &str,
    ) -> Result<Self, BrokerError> {
        let deadline = Duration::from_secs(settings.connect_timeout_secs.max(1));
        tokio::time::timeout(deadline, Self::open_unbounded(settings, topology, name))
            .await
            .unwrap_or(Err(BrokerError::Timeout("broker connect and handshake")))
    }

    async fn open_unbounded(
        settings: &AmqpSettings,
        topology: &Topology,
        name: &str,
    ) -> Result<Self, BrokerError> {
        let conn = Arc::new(broker::connect(settings, name).await?);
        topology.declare_on(&conn).await?;
        let renew_after = Duration::from_secs(settings.renew_channel_after_nacks_secs.max(1));
        let publisher = Arc::new(ConfirmedPublisher::renewing(conn.clone(), renew_after).await?);
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
                topology.triggers_queue.as_str().into(),
                format!("{name}/consumer").as_str().into(),
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
                topology.results_queue.as_str().into(),
                format!("{name}/results").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            conn,
            publisher,
            consume,
            consumer,
            results,
            results_consumer,
            name: name.to_owned(),
        })
    }

    /// `Err` says why the session is no longer usable.
    pub fn check(&self, probe: &mut BrokerProbe, status: &WorkerStatus) -> Result<(), String> {
        if !self.conn.status().connected() {
            return Err("connection is no longer connected".into());
        }
        if !self.consume.status().connected() {
            return Err("consumer channel closed".into());
        }
        if !self.results.status().connected() {
            return Err("results channel closed".into());
        }
        // The broker closes the confirm channel on its own (a 404 for a deleted exchange),
        // or a confirm went missing: without a new session nothing would be published again.
        if !self.publisher.is_usable() {
            return Err("publisher channel unusable".into());
        }
        probe.tick(&self.consume, status)
    }

    /// Stops both consumers; what is in flight finishes.
    pub async fn cancel_consumers(&self) {
        for (ch, suffix) in [(&self.consume, "consumer"), (&self.results, "results")] {
            let tag = format!("{}/{suffix}", self.name);
            let _ = ch
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
    }

    /// Closes the channels (flushing pending confirms) and the connection, each bounded.
    pub async fn close(self) {
        self.publisher.close().await;
        let _ =
            tokio::time::timeout(CLOSE_TIMEOUT, self.consume.close(200, "shutdown".into())).await;
        let _ =
            tokio::time::timeout(CLOSE_TIMEOUT, self.results.close(200, "shutdown".into())).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.conn.close(200, "shutdown".into())).await;
    }

    /// Drops a broken session's connection, bounded.
    pub async fn abandon(&self) {
        let _ =
            tokio::time::timeout(CLOSE_TIMEOUT, self.conn.close(200, "rebuilding".into())).await;
    }
}

/// A `basic.qos` round trip on the consume channel, at most one in flight, off the loop so a
/// link busy with big deliveries delays the answer without stalling the loop.
pub struct BrokerProbe {
    prefetch: u16,
    inflight: Option<tokio::task::JoinHandle<Result<(), lapin::Error>>>,
}

impl BrokerProbe {
    pub fn new(prefetch: u16) -> Self {
        Self {
            prefetch,
            inflight: None,
        }
    }

    fn tick(&mut self, ch: &Channel, status: &WorkerStatus) -> Result<(), String> {
        if let Some(p) = &self.inflight
            && p.is_finished()
        {
            match self
                .inflight
                .take()
                .map(futures_util::FutureExt::now_or_never)
            {
                Some(Some(Ok(Ok(())))) => status.broker_answered(),
                Some(Some(Ok(Err(e)))) => return Err(format!("broker probe failed: {e}")),
                _ => {}
            }
        }
        if self.inflight.is_none() {
            let (ch, prefetch) = (ch.clone(), self.prefetch);
            self.inflight = Some(tokio::spawn(async move {
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
        if let Some(p) = self.inflight.take() {
            p.abort();
        }
    }
}

/// The wait between session attempts: exponential with jitter, reset by a session that
/// lasted, or by the broker's port opening again.
pub fn reconnect_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(15))
        .without_max_times()
}

/// How a wait between broker attempts ended.
pub enum Pause {
    Shutdown,
    Elapsed,
    /// The broker's port refused connections during the wait and now accepts them: it came
    /// back, so retry at once with a fresh backoff.
    Reachable,
}

/// Waits `wait` before the next broker attempt, watching the broker's TCP port meanwhile, so
/// that a restarted broker is used within a fraction of a second rather than at the end of a
/// wait chosen during the outage. `refused`: the last attempt found the port closed.
pub async fn pause(
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
