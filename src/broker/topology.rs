//! Exchange and queue names, all under one prefix, declared idempotently.

use super::BrokerError;
use crate::contract::Subsystem;
use crate::contract::catalog::Catalog;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use std::collections::BTreeMap;

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
}

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
            self.declare_pair(ch, queue, exchange, dead_exchange, dead_queue)
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

#[cfg(test)]
mod tests {
    use super::*;

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
