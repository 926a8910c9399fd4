//! The dead queue as a reader sees it: one connection, opened on first use and kept, so a
//! page that lists dead letters asks the broker module and never opens a connection itself.

use super::dlq::{self, DeadLetter};
use super::{BrokerError, Topology, connect, connection_name};
use crate::config::AmqpSettings;
use lapin::Connection;
use std::time::Duration;
use tokio::sync::Mutex;

/// Lists the triggers' dead queue for a reader (the console), within a time limit.
pub struct DeadQueueReader {
    amqp: AmqpSettings,
    topology: Topology,
    conn: Mutex<Option<Connection>>,
}

impl DeadQueueReader {
    pub fn new(amqp: AmqpSettings, topology: Topology) -> Self {
        DeadQueueReader {
            amqp,
            topology,
            conn: Mutex::new(None),
        }
    }

    /// The dead queue's name.
    pub fn queue(&self) -> &str {
        &self.topology.dead_queue
    }

    /// Up to `limit` dead letters, oldest first, left in the queue; `Timeout` if the broker
    /// does not answer `within`. A failed connection is dropped and reopened next time.
    pub async fn peek(
        &self,
        limit: usize,
        within: Duration,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let mut held = self.conn.lock().await;
        let work = async {
            if !held.as_ref().is_some_and(|c| c.status().connected()) {
                let name = connection_name(&self.topology.prefix, "console");
                *held = Some(connect(&self.amqp, &name).await?);
            }
            match held.as_ref() {
                Some(conn) => dlq::list(conn, &self.topology, limit).await,
                None => Err(BrokerError::Timeout("a broker connection")),
            }
        };
        let listed = match tokio::time::timeout(within, work).await {
            Ok(r) => r,
            Err(_) => Err(BrokerError::Timeout("the dead queue")),
        };
        if listed.is_err()
            && let Some(conn) = held.take()
        {
            let _ = conn.close(200, "dropped after an error".into()).await;
        }
        listed
    }

    /// Closes the kept connection, if any.
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close(200, "closing".into()).await;
        }
    }
}
