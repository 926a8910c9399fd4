//! The dead-letter queue: list what is there and why, and replay triggers to the triggers
//! exchange once their cause is fixed (a tenant imported, a database restored).
//!
//! Messages are taken unacked, so nothing is lost if this process dies midway: the broker
//! puts them back. A replayed message is acked only after the broker confirmed its copy; a
//! message that cannot be replayed (no message_id) goes back to the dead queue.

use super::{BrokerError, ConfirmedPublisher, Outgoing, Topology, header};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::{Channel, Connection};
use serde::Serialize;

/// One dead-lettered trigger as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub message_id: Option<String>,
    pub routing_key: String,
    pub tenant_id: Option<String>,
    /// The worker's `x-revenue-os-reason` (`malformed`, `too_large`, `no_message_id`,
    /// `unknown_tenant`, ...) when it moved the trigger here; else the broker's
    /// `x-first-death-reason` (`delivery_limit`: retried until the limit).
    pub reason: Option<String>,
    /// The worker's `x-revenue-os-detail`, if any.
    pub detail: Option<String>,
    /// The body's size in bytes.
    pub size: usize,
    /// The body as text, its first `BODY_PREVIEW_BYTES` only (a `too_large` one is big).
    pub body: String,
}

/// The one reason the worker dead-letters by rejecting (its body was never read whole, so it
/// cannot be copied): the broker's dead-lettering then says `rejected`, shown as this.
pub const UNREAD: &str = "too_large";

/// How much of a dead letter's body `list` shows.
pub const BODY_PREVIEW_BYTES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Left in the dead queue: no message_id of the publisher's to keep the replay idempotent.
    pub kept: usize,
}

fn describe(d: &Delivery) -> DeadLetter {
    DeadLetter {
        message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
        routing_key: d.routing_key.to_string(),
        tenant_id: header(&d.properties, "tenant_id"),
        reason: reason(d),
        detail: header(&d.properties, "x-revenue-os-detail").or_else(|| {
            (reason(d).as_deref() == Some(UNREAD) && !has_own_reason(d)).then(|| {
                "larger than amqp.max_message_bytes: rejected unread by the worker".to_owned()
            })
        }),
        size: d.data.len(),
        body: String::from_utf8_lossy(&d.data[..d.data.len().min(BODY_PREVIEW_BYTES)]).into_owned(),
    }
}

fn has_own_reason(d: &Delivery) -> bool {
    header(&d.properties, "x-revenue-os-reason").is_some()
}

/// The worker's reason; else the broker's, where `rejected` can only be the worker's `UNREAD`.
fn reason(d: &Delivery) -> Option<String> {
    header(&d.properties, "x-revenue-os-reason").or_else(|| {
        header(&d.properties, "x-first-death-reason").map(|r| {
            if r == "rejected" {
                UNREAD.to_owned()
            } else {
                r
            }
        })
    })
}

/// The message id the publisher gave the dead letter. A trigger that came without one gets a
/// generated `dead-…` id on its dead-letter copy (reason `no_message_id`); that one is no
/// idempotency key, so it is not replayed.
fn own_message_id(d: &Delivery) -> Option<String> {
    if header(&d.properties, "x-revenue-os-reason").as_deref() == Some("no_message_id") {
        return None;
    }
    d.properties.message_id().as_ref().map(|m| m.to_string())
}

/// Takes up to `limit` messages off the dead queue without acking them.
async fn take(
    ch: &Channel,
    topology: &Topology,
    limit: usize,
) -> Result<Vec<Delivery>, BrokerError> {
    let mut out = Vec::new();
    while out.len() < limit {
        let got = ch
            .basic_get(
                topology.dead_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?;
        match got {
            Some(m) => out.push(m.delivery),
            None => break,
        }
    }
    Ok(out)
}

async fn put_back(ch: &Channel, deliveries: &[Delivery]) -> Result<(), BrokerError> {
    for d in deliveries {
        ch.basic_nack(
            d.delivery_tag,
            BasicNackOptions {
                requeue: true,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// Up to `limit` dead-lettered triggers, oldest first; they stay in the queue.
pub async fn list(
    conn: &Connection,
    topology: &Topology,
    limit: usize,
) -> Result<Vec<DeadLetter>, BrokerError> {
    topology.declare_on(conn).await?;
    let ch = conn.create_channel().await?;
    let taken = take(&ch, topology, limit).await?;
    let listed = taken.iter().map(describe).collect();
    put_back(&ch, &taken).await?;
    let _ = ch.close(200, "listed".into()).await;
    Ok(listed)
}

/// Republishes up to `limit` dead-lettered triggers to the triggers exchange with their
/// original routing key, message_id, reply_to and correlation_id. The message_id stays the
/// same, so a trigger that did produce a cycle before is answered from that cycle.
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    limit: usize,
) -> Result<ReplayReport, BrokerError> {
    topology.declare_on(conn).await?;
    let ch = conn.create_channel().await?;
    let publisher = ConfirmedPublisher::open(conn).await?;
    let taken = take(&ch, topology, limit).await?;
    let mut report = ReplayReport::default();
    let mut keep = Vec::new();
    for d in taken {
        let Some(message_id) = own_message_id(&d) else {
            keep.push(d);
            continue;
        };
        let out = Outgoing {
            exchange: topology.triggers_exchange.clone(),
            routing_key: d.routing_key.to_string(),
            message_id: message_id.clone(),
            headers: header(&d.properties, "tenant_id")
                .map(|t| vec![("tenant_id".to_owned(), t)])
                .unwrap_or_default(),
            body: d.data.clone(),
            mandatory: true,
            persistent: true,
            correlation_id: d
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string()),
            reply_to: d.properties.reply_to().as_ref().map(|r| r.to_string()),
        };
        if let Err(e) = publisher.publish(&out).await {
            keep.push(d);
            put_back(&ch, &keep).await?;
            return Err(e);
        }
        ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await?;
        report.replayed.push(message_id);
    }
    report.kept = keep.len();
    put_back(&ch, &keep).await?;
    publisher.close().await;
    let _ = ch.close(200, "replayed".into()).await;
    Ok(report)
}
