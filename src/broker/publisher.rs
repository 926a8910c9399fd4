//! Publishing on a channel in publisher-confirm mode. A message counts as published only when
//! the broker acks it and did not return it.

use super::BrokerError;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long `close` waits for confirms, and then for the broker's close-ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    /// String headers (tenant_id, cycle_id, ...).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Ask the broker to return the message when no queue is bound to its routing key.
    pub mandatory: bool,
    /// delivery_mode 2.
    pub persistent: bool,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
}

impl Outgoing {
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (k, v) in &self.headers {
            headers.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        let mut p = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(self.message_id.as_str().into())
            .with_app_id("revenue-os".into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(headers)
            .with_delivery_mode(if self.persistent { 2 } else { 1 });
        if let Some(c) = &self.correlation_id {
            p = p.with_correlation_id(c.as_str().into());
        }
        if let Some(r) = &self.reply_to {
            p = p.with_reply_to(r.as_str().into());
        }
        p
    }
}

/// A confirm-mode channel. Batches are serialised by a lock so that every confirm and every
/// basic.return on the channel belongs to the batch in progress: lapin pairs a return with
/// whichever ack comes next, so returns are matched to messages by `message_id` instead.
pub struct ConfirmedPublisher {
    /// Replaced by `renew` (see `Renewal`); cloned out for each batch.
    channel: std::sync::Mutex<Channel>,
    /// The batch lock; it also holds when the current channel was first nacked.
    lock: tokio::sync::Mutex<FirstNack>,
    broken: AtomicBool,
    confirm_timeout: Duration,
    renewal: Option<Renewal>,
}

/// A publisher that may open a new channel on its connection when a nack comes `after` or
/// more after the channel's first. RabbitMQ 3.10 keeps a quorum queue's client state per channel: a
/// channel whose first publish to a queue found the queue's recorded leader on a dead node
/// has every later publish to that queue nacked, for as long as the channel lives, however
/// soon a new leader is elected. A new channel reads the queue's current leader. Only the
/// publishing channel is replaced: the consumers and their unacked deliveries are untouched.
struct Renewal {
    conn: Arc<Connection>,
    after: Duration,
}

/// When the current channel was first nacked. No quiet spell resets it: a stuck queue's rows
/// are retried with a growing backoff, so its nacks may come further apart than `after`. Two
/// unrelated elections on one channel cost one needless renewal, nothing more.
#[derive(Default)]
struct FirstNack {
    first: Option<Instant>,
}

impl FirstNack {
    /// Records a batch that had a nack at `now`; true when the channel was first nacked at
    /// least `after` before.
    fn nacked(&mut self, now: Instant, after: Duration) -> bool {
        let first = *self.first.get_or_insert(now);
        now.duration_since(first) >= after
    }
}

impl ConfirmedPublisher {
    pub async fn open(conn: &Connection) -> Result<Self, BrokerError> {
        Ok(Self::with_channel(confirm_channel(conn).await?, None))
    }

    /// Like `open`, and renews its channel when a nack comes `after` or more after its first.
    pub async fn renewing(conn: Arc<Connection>, after: Duration) -> Result<Self, BrokerError> {
        let channel = confirm_channel(&conn).await?;
        Ok(Self::with_channel(channel, Some(Renewal { conn, after })))
    }

    fn with_channel(channel: Channel, renewal: Option<Renewal>) -> Self {
        Self {
            channel: std::sync::Mutex::new(channel),
            lock: tokio::sync::Mutex::new(FirstNack::default()),
            broken: AtomicBool::new(false),
            confirm_timeout: Duration::from_secs(30),
            renewal,
        }
    }

    fn channel(&self) -> Channel {
        self.channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// False once the channel closed or a confirm went missing; open a new one then.
    pub fn is_usable(&self) -> bool {
        self.channel().status().connected() && !self.broken.load(Ordering::Relaxed)
    }

    pub async fn publish(&self, msg: &Outgoing) -> Result<(), BrokerError> {
        self.publish_batch(std::slice::from_ref(msg))
            .await
            .pop()
            .unwrap_or(Err(BrokerError::Timeout("publisher confirm")))
    }

    /// Publishes every message, then waits for all confirms. One result per message, in order.
    pub async fn publish_batch(&self, msgs: &[Outgoing]) -> Vec<Result<(), BrokerError>> {
        let mut nacks = self.lock.lock().await;
        let channel = self.channel();
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            let opts = BasicPublishOptions {
                mandatory: m.mandatory,
                ..Default::default()
            };
            let sent = channel
                .basic_publish(
                    m.exchange.as_str().into(),
                    m.routing_key.as_str().into(),
                    opts,
                    &m.body,
                    m.properties(),
                )
                .await;
            pending.push(sent);
        }
        let mut confirmations = Vec::with_capacity(msgs.len());
        let mut returned: HashSet<String> = HashSet::new();
        // One deadline for the whole batch: a stalled broker (memory or disk alarm) holds the
        // lock for confirm_timeout, not once per message. Past it, each remaining confirm is
        // polled once (an ack already received still counts) and fails at once otherwise.
        let deadline = tokio::time::Instant::now() + self.confirm_timeout;
        for sent in pending {
            let c = match sent {
                Err(e) => Err(BrokerError::from(e)),
                Ok(confirm) => match tokio::time::timeout_at(deadline, confirm).await {
                    Err(_) => {
                        self.broken.store(true, Ordering::Relaxed);
                        Err(BrokerError::Timeout("publisher confirm"))
                    }
                    Ok(Err(e)) => Err(BrokerError::from(e)),
                    Ok(Ok(c)) => Ok(c),
                },
            };
            let c = c.map(|c| {
                let nacked = c.is_nack();
                if let Some(ret) = c.take_message()
                    && let Some(id) = ret.delivery.properties.message_id()
                {
                    returned.insert(id.to_string());
                }
                nacked
            });
            confirmations.push(c);
        }
        if let Some(r) = &self.renewal
            && confirmations.iter().any(|c| matches!(c, Ok(true)))
            && nacks.nacked(Instant::now(), r.after)
        {
            self.renew(r, &channel).await;
            *nacks = FirstNack::default();
        }
        msgs.iter()
            .zip(confirmations)
            .map(|(m, c)| match c {
                Err(e) => Err(e),
                Ok(true) => Err(BrokerError::Nacked(m.message_id.clone())),
                Ok(false) if returned.contains(&m.message_id) => Err(BrokerError::Returned {
                    message_id: m.message_id.clone(),
                    reply: "NO_ROUTE".into(),
                }),
                Ok(false) => Ok(()),
            })
            .collect()
    }

    /// Opens a new confirm channel in place of `old` (every confirm of `old` is settled: the
    /// batch lock is held). A new channel that cannot be opened marks the publisher unusable,
    /// so the worker opens a new session.
    async fn renew(&self, r: &Renewal, old: &Channel) {
        match confirm_channel(&r.conn).await {
            Ok(fresh) => {
                tracing::warn!(nacked_for = ?r.after, "publishes nacked; publishing on a new channel");
                *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                let old = old.clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(CLOSE_TIMEOUT, old.close(200, "renewed".into())).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "publishes nacked and no new channel; a new session");
                self.broken.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Closes the channel; waits (boundedly, so a stalled broker cannot hang a shutdown) for
    /// the batch in progress and outstanding confirms first.
    pub async fn close(&self) {
        let flushed = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _guard = self.lock.lock().await;
            // Read under the lock: the batch in progress may have renewed the channel.
            let channel = self.channel();
            if channel.status().connected() {
                let _ = channel.wait_for_confirms().await;
            }
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(waited = ?CLOSE_TIMEOUT, "publisher confirms still outstanding; closing anyway");
        }
        let channel = self.channel();
        if channel.status().connected() {
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, channel.close(200, "shutdown".into())).await;
        }
    }
}

async fn confirm_channel(conn: &Connection) -> Result<Channel, BrokerError> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::FirstNack;
    use std::time::{Duration, Instant};

    #[test]
    fn a_channel_is_renewed_by_a_nack_coming_long_enough_after_its_first() {
        let after = Duration::from_secs(15);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut run = FirstNack::default();
        assert!(
            !run.nacked(at(0), after),
            "one nack is an election, not a stuck channel"
        );
        assert!(!run.nacked(at(1), after));
        assert!(!run.nacked(at(14), after));
        // A stuck row retried with a 40 s backoff still gets its channel renewed.
        assert!(run.nacked(at(54), after));
    }
}
