//! A tap: a private queue bound to every action exchange and the cycles exchange, so a person
//! (the demo) or a tool can watch what the worker publishes without touching executor queues.

use super::{BrokerError, Topology, header};
use futures_util::StreamExt;
use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::time::Duration;

/// One message seen on the tap.
#[derive(Debug, Clone, PartialEq)]
pub struct Tapped {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub cycle_id: Option<String>,
    pub body: Vec<u8>,
}

pub struct Tap {
    _channel: Channel,
    consumer: Consumer,
}

impl Tap {
    /// Declares an exclusive, auto-deleted queue bound with `#` to the action exchanges and
    /// the cycles exchange; it disappears with the connection.
    pub async fn open(conn: &Connection, topology: &Topology) -> Result<Self, BrokerError> {
        topology.declare_on(conn).await?;
        let ch = conn.create_channel().await?;
        let (inbox, consumer) = super::private_inbox(&ch).await?;
        let exchanges = topology
            .actions
            .values()
            .chain(std::iter::once(&topology.cycles_exchange));
        for exchange in exchanges {
            ch.queue_bind(
                inbox.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(Self {
            _channel: ch,
            consumer,
        })
    }

    /// The next message, or `None` after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Tapped>, BrokerError> {
        let delivery = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) | Ok(None) => return Ok(None),
            Ok(Some(d)) => d?,
        };
        Ok(Some(Tapped {
            exchange: delivery.exchange.to_string(),
            routing_key: delivery.routing_key.to_string(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string()),
            cycle_id: header(&delivery.properties, "cycle_id"),
            body: delivery.data,
        }))
    }
}
