//! Exchange and queue names, all under one prefix, declared idempotently.

use super::BrokerError;
use crate::contract::Subsystem;
use crate::contract::catalog::Catalog;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use std::collections::BTreeMap;

/// The group size RabbitMQ gives a quorum queue declared without one (`quorum_cluster_size`).
pub const DEFAULT_QUORUM_GROUP_SIZE: u32 = 3;

/// The queue argument naming a new quorum queue's replica count.
const GROUP_SIZE_ARG: &str = "x-quorum-initial-group-size";

/// Practically unlimited: dead letters leave the dead queue only by replay or an operator.
const DEAD_QUEUE_DELIVERY_LIMIT: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    /// Topic exchange scheduler/alerting/people publish triggers to.
    pub triggers_exchange: String,
    /// Quorum queue bound to `triggers_exchange` with `#`.
    pub triggers_queue: String,
    /// Dead-letter exchange of `triggers_queue`.
    pub dead_letter_exchange: String,
    /// Quorum queue holding rejected and over-delivered triggers.
    pub dead_queue: String,
    /// Topic exchange of cycle events (`completed|failed|skipped.<tenant_id>`).
    pub cycles_exchange: String,
    /// One topic exchange per owner subsystem, named by the executor map.
    pub actions: BTreeMap<Subsystem, String>,
    /// Topic exchange executors publish their reports to (`<type>.<tenant_id>`).
    pub results_exchange: String,
    /// Quorum queue bound to `results_exchange` with `#`; the worker consumes it.
    pub results_queue: String,
    /// Dead-letter exchange of `results_queue`.
    pub results_dead_letter_exchange: String,
    /// Quorum queue holding unusable and over-delivered reports.
    pub results_dead_queue: String,
    pub delivery_limit: u32,
    /// `x-quorum-initial-group-size` of the four queues (`amqp.quorum_initial_group_size`).
    pub quorum_group_size: u32,
}

/// Queues found to exist with another group size than the setting (`None`: without one).
type ExistingSizes = BTreeMap<String, Option<i64>>;

impl Topology {
    pub fn new(prefix: &str, catalog: &Catalog, delivery_limit: u32) -> Self {
        let actions = Subsystem::ALL
            .iter()
            .map(|s| {
                let rel = catalog
                    .executor(*s)
                    .map(|e| e.exchange.clone())
                    .unwrap_or_else(|| format!("actions.{s}"));
                (*s, format!("{prefix}.{rel}"))
            })
            .collect();
        Self {
            prefix: prefix.to_owned(),
            triggers_exchange: format!("{prefix}.triggers"),
            triggers_queue: format!("{prefix}.triggers"),
            dead_letter_exchange: format!("{prefix}.triggers.dlx"),
            dead_queue: format!("{prefix}.triggers.dead"),
            cycles_exchange: format!("{prefix}.cycles"),
            actions,
            results_exchange: format!("{prefix}.results"),
            results_queue: format!("{prefix}.results"),
            results_dead_letter_exchange: format!("{prefix}.results.dlx"),
            results_dead_queue: format!("{prefix}.results.dead"),
            delivery_limit,
            quorum_group_size: DEFAULT_QUORUM_GROUP_SIZE,
        }
    }

    /// The topology `amqp` describes: its prefix, delivery limit and quorum group size.
    pub fn from_settings(amqp: &crate::config::AmqpSettings, catalog: &Catalog) -> Self {
        Self::new(&amqp.prefix, catalog, amqp.delivery_limit)
            .with_quorum_group_size(amqp.quorum_initial_group_size)
    }

    pub fn with_quorum_group_size(mut self, size: u32) -> Self {
        self.quorum_group_size = size.max(1);
        self
    }

    /// `declare` on channels of its own. A queue that exists with another group size (or none:
    /// declared before this setting existed) would make RabbitMQ refuse the declare
    /// (PRECONDITION_FAILED, which closes the channel); the argument only matters when a queue
    /// is created, so such a queue is declared again, on a new channel, with the value it has.
    /// Any other difference still fails.
    pub async fn declare_on(&self, conn: &Connection) -> Result<(), BrokerError> {
        let mut known = ExistingSizes::new();
        // At most one retry per queue, plus the one that succeeds.
        for _ in 0..5 {
            let ch = conn.create_channel().await?;
            match self.declare_with(&ch, &known).await {
                Ok(()) => {
                    let _ = ch.close(200, "declared".into()).await;
                    return Ok(());
                }
                Err(e) => {
                    let Some((queue, current)) = group_size_clash(&e) else {
                        return Err(e);
                    };
                    if known.get(&queue) == Some(&current) {
                        return Err(e);
                    }
                    tracing::warn!(%queue, existing = ?current, setting = self.quorum_group_size,
                        "queue exists with another {GROUP_SIZE_ARG}; keeping its own (the \
                        setting applies to new queues; rabbitmq-queues grow adds members)");
                    known.insert(queue, current);
                }
            }
        }
        Err(BrokerError::Timeout("declaring the topology"))
    }

    /// The group size to declare `queue` with: the one it exists with, if it was found to
    /// differ, else the setting.
    fn group_size_for(&self, queue: &str, known: &ExistingSizes) -> Option<i64> {
        match known.get(queue) {
            Some(existing) => *existing,
            None => Some(i64::from(self.quorum_group_size)),
        }
    }

    pub fn action_exchange(&self, s: Subsystem) -> String {
        self.actions
            .get(&s)
            .cloned()
            .unwrap_or_else(|| format!("{}.actions.{s}", self.prefix))
    }

    fn exchanges(&self) -> Vec<(&str, ExchangeKind)> {
        let mut v = vec![
            (self.triggers_exchange.as_str(), ExchangeKind::Topic),
            (self.dead_letter_exchange.as_str(), ExchangeKind::Fanout),
            (self.cycles_exchange.as_str(), ExchangeKind::Topic),
            (self.results_exchange.as_str(), ExchangeKind::Topic),
            (
                self.results_dead_letter_exchange.as_str(),
                ExchangeKind::Fanout,
            ),
        ];
        v.extend(
            self.actions
                .values()
                .map(|e| (e.as_str(), ExchangeKind::Topic)),
        );
        v
    }

    /// Declares every exchange, queue and binding; safe to repeat with the same settings.
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        self.declare_with(ch, &ExistingSizes::new()).await
    }

    async fn declare_with(&self, ch: &Channel, known: &ExistingSizes) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in self.exchanges() {
            ch.exchange_declare(name.into(), kind, durable, FieldTable::default())
                .await?;
        }
        for (queue, exchange, dead_exchange, dead_queue) in [
            (
                &self.triggers_queue,
                &self.triggers_exchange,
                &self.dead_letter_exchange,
                &self.dead_queue,
            ),
            (
                &self.results_queue,
                &self.results_exchange,
                &self.results_dead_letter_exchange,
                &self.results_dead_queue,
            ),
        ] {
            self.declare_pair(ch, queue, exchange, dead_exchange, dead_queue, known)
                .await?;
        }
        Ok(())
    }

    /// A work queue bound with `#` to its exchange, with a delivery limit, dead-lettering to
    /// a dead queue of its own.
    async fn declare_pair(
        &self,
        ch: &Channel,
        queue: &str,
        exchange: &str,
        dead_exchange: &str,
        dead_queue: &str,
        known: &ExistingSizes,
    ) -> Result<(), BrokerError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let mut dead_args = FieldTable::default();
        dead_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        // RabbitMQ 4 gives quorum queues a delivery limit of 20 and this queue has no DLX:
        // `dlq list` (get, then requeue) would end up dropping dead letters.
        dead_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DEAD_QUEUE_DELIVERY_LIMIT),
        );
        if let Some(n) = self.group_size_for(dead_queue, known) {
            dead_args.insert(GROUP_SIZE_ARG.into(), AMQPValue::LongLongInt(n));
        }
        ch.queue_declare(dead_queue.into(), durable, dead_args)
            .await?;
        ch.queue_bind(
            dead_queue.into(),
            dead_exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead_exchange.into()),
        );
        if let Some(n) = self.group_size_for(queue, known) {
            args.insert(GROUP_SIZE_ARG.into(), AMQPValue::LongLongInt(n));
        }
        ch.queue_declare(queue.into(), durable, args).await?;
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(())
    }

    /// Deletes everything `declare` created (tests, decommissioning). Executors' own queues
    /// are theirs to delete.
    pub async fn delete(&self, ch: &Channel) -> Result<(), BrokerError> {
        for q in [
            &self.triggers_queue,
            &self.dead_queue,
            &self.results_queue,
            &self.results_dead_queue,
        ] {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for (name, _) in self.exchanges() {
            ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

/// The queue and its current group size (`None`: declared without one) when `e` is RabbitMQ
/// refusing a declare only because of `x-quorum-initial-group-size`: "PRECONDITION_FAILED -
/// inequivalent arg 'x-quorum-initial-group-size' for queue 'p.triggers' in vhost '/':
/// received the value '3' of type 'long' but current is none" (rabbit_misc's wording).
fn group_size_clash(e: &BrokerError) -> Option<(String, Option<i64>)> {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    let BrokerError::Amqp(e) = e else {
        return None;
    };
    let lapin::ErrorKind::ProtocolError(p) = e.kind() else {
        return None;
    };
    if !matches!(
        p.kind(),
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    ) {
        return None;
    }
    parse_group_size_clash(p.get_message().as_str())
}

fn parse_group_size_clash(text: &str) -> Option<(String, Option<i64>)> {
    let rest = text
        .split_once(&format!("inequivalent arg '{GROUP_SIZE_ARG}' for queue '"))?
        .1;
    let (queue, rest) = rest.split_once("' in vhost '")?;
    let current = rest.rsplit_once("but current is ")?.1.trim();
    if current == "none" {
        return Some((queue.to_owned(), None));
    }
    let value = current.strip_prefix("the value '")?.split_once('\'')?.0;
    Some((queue.to_owned(), Some(value.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_size_clash_names_the_queue_and_its_current_size() {
        let none = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for \
                    queue 'p.triggers' in vhost '/': received the value '3' of type 'long' but \
                    current is none";
        assert_eq!(
            parse_group_size_clash(none),
            Some(("p.triggers".into(), None))
        );
        let five = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for \
                    queue 'a.b' in vhost 'v': received the value '3' of type 'long' but \
                    current is the value '5' of type 'signedint'";
        assert_eq!(parse_group_size_clash(five), Some(("a.b".into(), Some(5))));
        let other = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'p.t' \
                     in vhost '/': received the value '3' of type 'long' but current is none";
        assert_eq!(parse_group_size_clash(other), None);
    }

    #[test]
    fn names_follow_the_prefix_and_executor_map() {
        let c = Catalog::embedded().unwrap();
        let t = Topology::new("p1", &c, 7);
        assert_eq!(t.triggers_exchange, "p1.triggers");
        assert_eq!(t.triggers_queue, "p1.triggers");
        assert_eq!(t.dead_letter_exchange, "p1.triggers.dlx");
        assert_eq!(t.dead_queue, "p1.triggers.dead");
        assert_eq!(t.cycles_exchange, "p1.cycles");
        assert_eq!(t.action_exchange(Subsystem::Crm), "p1.actions.crm");
        assert_eq!(t.actions.len(), Subsystem::ALL.len());
        assert_eq!(t.results_exchange, "p1.results");
        assert_eq!(t.results_queue, "p1.results");
        assert_eq!(t.results_dead_queue, "p1.results.dead");
    }
}
