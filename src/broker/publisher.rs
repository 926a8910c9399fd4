//! Publishing on a channel in publisher-confirm mode. A message counts as published only when
//! the broker acks it and did not return it.

use super::BrokerError;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    channel: Channel,
    lock: tokio::sync::Mutex<()>,
    broken: AtomicBool,
    confirm_timeout: Duration,
}

impl ConfirmedPublisher {
    pub async fn open(conn: &Connection) -> Result<Self, BrokerError> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            lock: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
            confirm_timeout: Duration::from_secs(30),
        })
    }

    /// False once the channel closed or a confirm went missing; open a new one then.
    pub fn is_usable(&self) -> bool {
        self.channel.status().connected() && !self.broken.load(Ordering::Relaxed)
    }

    pub async fn publish(&self, msg: &Outgoing) -> Result<(), BrokerError> {
        self.publish_batch(std::slice::from_ref(msg))
            .await
            .pop()
            .unwrap_or(Err(BrokerError::Timeout("publisher confirm")))
    }

    /// Publishes every message, then waits for all confirms. One result per message, in order.
    pub async fn publish_batch(&self, msgs: &[Outgoing]) -> Vec<Result<(), BrokerError>> {
        let _guard = self.lock.lock().await;
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            let opts = BasicPublishOptions {
                mandatory: m.mandatory,
                ..Default::default()
            };
            let sent = self
                .channel
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

    /// Closes the channel; waits (boundedly, so a stalled broker cannot hang a shutdown) for
    /// the batch in progress and outstanding confirms first.
    pub async fn close(&self) {
        let flushed = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _guard = self.lock.lock().await;
            if self.channel.status().connected() {
                let _ = self.channel.wait_for_confirms().await;
            }
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(waited = ?CLOSE_TIMEOUT, "publisher confirms still outstanding; closing anyway");
        }
        if self.channel.status().connected() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.channel.close(200, "shutdown".into()))
                .await;
        }
    }
}
