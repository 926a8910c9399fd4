//! Settling a delivery, for triggers and reports alike: hold it while the database is down
//! (so an outage never spends the delivery limit), then ack, reject, or move it to a
//! dead-letter exchange as a confirmed copy carrying its reason.

use super::health::WorkerStatus;
use crate::broker::{self, ConfirmedPublisher, Disposition, Outgoing};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use std::future::Future;

/// Runs `attempt` until its disposition is anything but `Unavailable`, waiting for the
/// database between attempts: the delivery stays unsettled and its count where it is.
pub async fn hold<T, F, Fut>(status: &WorkerStatus, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    T: AsRef<Disposition>,
{
    loop {
        let running = status.unit_started();
        let done = attempt().await;
        drop(running);
        match done.as_ref() {
            Disposition::Unavailable(why) => {
                status.report_unreachable(why);
                status.db_up().await;
            }
            _ => return done,
        }
    }
}

/// Where dead letters go and how the copy is confirmed.
#[derive(Clone, Copy)]
pub struct DeadLetters<'a> {
    pub publisher: &'a ConfirmedPublisher,
    pub exchange: &'a str,
}

/// Settles `d` as `disposition` says; `body` is the delivery's body, handed back by the unit
/// (moved, not copied) for a dead-letter copy. A channel gone before the settle means the
/// broker redelivers, and the unit's work is idempotent.
pub async fn settle(d: &Delivery, disposition: &Disposition, dead: DeadLetters<'_>, body: Vec<u8>) {
    let settled = match disposition {
        Disposition::Ack => d.acker.ack(BasicAckOptions::default()).await,
        // reject, not nack: RabbitMQ 4.3+ may not count a requeuing nack toward the delivery
        // limit, and the limit is what dead-letters a message that keeps failing.
        Disposition::Requeue(_) => d.acker.reject(BasicRejectOptions { requeue: true }).await,
        Disposition::DeadLetter { reason, detail } => {
            dead_letter(dead, d, reason, detail, body).await
        }
        // `hold` never returns it; settle nothing if it ever did.
        Disposition::Unavailable(_) => Ok(false),
    };
    let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(?message_id, "delivery could not be settled (channel gone)")
        }
        Err(e) => tracing::warn!(?message_id, error = %e, "settling the delivery failed"),
    }
}

/// Moves a dead delivery to the exchange as a copy carrying why (`x-revenue-os-reason`,
/// `x-revenue-os-detail`), and acks the original only once the broker confirmed the copy;
/// an unconfirmed copy requeues the original, so nothing is lost either way. A `too_large`
/// body was cut by lapin, so a copy would lose it: that one is rejected instead, and the
/// queue's dead-letter exchange moves the original, whole (`x-first-death-reason: rejected`,
/// which `dlq list` shows as `too_large`).
async fn dead_letter(
    dead: DeadLetters<'_>,
    d: &Delivery,
    reason: &str,
    detail: &str,
    body: Vec<u8>,
) -> Result<bool, lapin::Error> {
    if reason == broker::dlq::UNREAD {
        return d.acker.reject(BasicRejectOptions { requeue: false }).await;
    }
    let copy = dead_letter_copy(d, dead.exchange, reason, detail, body);
    match dead.publisher.publish(&copy).await {
        Ok(()) => d.acker.ack(BasicAckOptions::default()).await,
        Err(e) => {
            tracing::warn!(error = %e, reason, "dead-letter copy not confirmed; requeued");
            d.acker.reject(BasicRejectOptions { requeue: true }).await
        }
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
        // A delivery without an id gets one derived from it, so a retried copy keeps it.
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
