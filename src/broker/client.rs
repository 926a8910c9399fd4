//! Publishing triggers (the `trigger` subcommand, schedulers written in Rust, tests), with an
//! optional wait for the cycle's result through `reply_to`.

use super::{BrokerError, ConfirmedPublisher, Outgoing, Topology};
use crate::config::AmqpSettings;
use crate::contract::TriggerMessage;
use futures_util::StreamExt;
use lapin::Connection;
use lapin::types::AMQPValue;
use std::time::Duration;

/// The result a worker sent to `reply_to`.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerReply {
    /// `completed`, `failed`, `skipped` or `rejected` (the `status` header).
    pub status: String,
    /// A KernelOutput, or a KernelError.
    pub body: serde_json::Value,
}

pub struct TriggerClient {
    conn: Connection,
    publisher: ConfirmedPublisher,
    topology: Topology,
}

impl TriggerClient {
    /// Connects and declares the topology, so a trigger sent before any worker started waits
    /// in the queue instead of being dropped.
    pub async fn connect(settings: &AmqpSettings, topology: Topology) -> Result<Self, BrokerError> {
        let conn = super::connect(
            settings,
            &super::connection_name(&topology.prefix, "trigger"),
        )
        .await?;
        let topology = topology.with_quorum_group_size(settings.quorum_initial_group_size);
        topology.declare_on(&conn).await?;
        let publisher = ConfirmedPublisher::open(&conn).await?;
        Ok(Self {
            conn,
            publisher,
            topology,
        })
    }

    fn outgoing(&self, msg: &TriggerMessage, message_id: &str) -> Outgoing {
        Outgoing {
            exchange: self.topology.triggers_exchange.clone(),
            routing_key: format!("{}.{}", msg.trigger.kind, msg.tenant_id),
            message_id: message_id.to_owned(),
            headers: vec![("tenant_id".into(), msg.tenant_id.clone())],
            body: serde_json::to_vec(msg).unwrap_or_default(),
            mandatory: true,
            persistent: true,
            correlation_id: None,
            reply_to: None,
        }
    }

    /// Publishes one trigger (persistent, mandatory, confirmed).
    pub async fn send(&self, msg: &TriggerMessage, message_id: &str) -> Result<(), BrokerError> {
        self.publisher
            .publish(&self.outgoing(msg, message_id))
            .await
    }

    /// Publishes many triggers in one confirmed batch (a scheduler's daily fan-out, the bench).
    pub async fn send_many(
        &self,
        batch: &[(TriggerMessage, String)],
    ) -> Vec<Result<(), BrokerError>> {
        let out: Vec<Outgoing> = batch.iter().map(|(m, id)| self.outgoing(m, id)).collect();
        self.publisher.publish_batch(&out).await
    }

    /// Publishes one trigger and waits up to `timeout` for the worker's reply.
    pub async fn send_and_wait(
        &self,
        msg: &TriggerMessage,
        message_id: &str,
        timeout: Duration,
    ) -> Result<TriggerReply, BrokerError> {
        let ch = self.conn.create_channel().await?;
        let (inbox, mut consumer) = super::private_inbox(&ch).await?;
        let mut out = self.outgoing(msg, message_id);
        out.reply_to = Some(inbox);
        out.correlation_id = Some(message_id.to_owned());
        self.publisher.publish(&out).await?;
        let wait = async {
            while let Some(d) = consumer.next().await {
                let d = d?;
                let corr = d.properties.correlation_id().as_ref().map(|c| c.as_str());
                if corr != Some(message_id) {
                    continue;
                }
                let status = header(&d.properties, "status").unwrap_or_default();
                let body = serde_json::from_slice(&d.data)
                    .unwrap_or_else(|_| serde_json::Value::String(lossy(&d.data)));
                return Ok(TriggerReply { status, body });
            }
            Err(BrokerError::Timeout("reply (consumer ended)"))
        };
        let res = tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(BrokerError::Timeout("reply")));
        let _ = ch.close(200, "done".into()).await;
        res
    }

    pub async fn close(self) {
        self.publisher.close().await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A string header of a message, if present.
pub fn header(p: &lapin::BasicProperties, key: &str) -> Option<String> {
    p.headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(lossy(s.as_bytes())),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        })
}
