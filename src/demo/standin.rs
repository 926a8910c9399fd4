//! A STAND-IN EXECUTOR for the demo and the tests: not a real executor. It takes every action
//! message off the broker, "applies" it without touching any external system, and reports
//! `acknowledged` then `applied` (before = the action's current value, after = its new value)
//! on `<prefix>.results`, the way docs/executors.md asks real executors to.

use crate::broker::{self, BrokerError, ConfirmedPublisher, Outgoing, Tap, Topology};
use crate::clock::Clock;
use crate::config::AmqpSettings;
use crate::contract::ActionMessage;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The `source` of its reports.
pub const SOURCE: &str = "stand-in-executor";

pub struct StandIn {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<usize, BrokerError>>,
}

impl StandIn {
    /// Connects, binds its own queue to every action exchange, and starts applying.
    /// `clock` stamps its reports (`time`), so a simulation's changes happen on its days.
    pub async fn start(
        settings: &AmqpSettings,
        topology: &Topology,
        clock: Clock,
    ) -> Result<Self, BrokerError> {
        let name = broker::connection_name(&topology.prefix, SOURCE);
        let conn = broker::connect(settings, &name).await?;
        let mut tap = Tap::open(&conn, topology).await?;
        let publisher = ConfirmedPublisher::open(&conn).await?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let topology = topology.clone();
        let task = tokio::spawn(async move {
            let mut applied = 0;
            while !token.is_cancelled() {
                let Some(m) = tap.next(Duration::from_millis(200)).await? else {
                    continue;
                };
                let (Some(subject), Ok(msg)) = (
                    m.message_id,
                    serde_json::from_slice::<ActionMessage>(&m.body),
                ) else {
                    continue; // a cycle event, not an action
                };
                let change = &msg.action.proposed_change;
                let applied_data = json!({
                    "tenant_id": msg.tenant_id,
                    "before": change.current_value,
                    "after": change.new_value,
                    "external_ref": format!("{SOURCE}:{subject}"),
                });
                for (kind, data) in [
                    ("acknowledged", json!({"tenant_id": msg.tenant_id})),
                    ("applied", applied_data),
                ] {
                    publisher
                        .publish(&report(
                            &topology,
                            &subject,
                            &msg.tenant_id,
                            kind,
                            data,
                            &clock,
                        ))
                        .await?;
                }
                applied += 1;
            }
            publisher.close().await;
            let _ = conn.close(200, "stand-in done".into()).await;
            Ok(applied)
        });
        Ok(Self { stop, task })
    }

    /// Stops it; returns how many actions it applied.
    pub async fn stop(self) -> Result<usize, crate::error::Error> {
        self.stop.cancel();
        Ok(self.task.await??)
    }
}

fn report(
    topology: &Topology,
    subject: &str,
    tenant: &str,
    kind: &str,
    data: Value,
    clock: &Clock,
) -> Outgoing {
    let id = format!("{subject}:{kind}");
    let event = json!({
        "specversion": "1.0", "id": id, "source": SOURCE,
        "type": format!("revenue_os.action.{kind}"),
        "time": clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "subject": subject, "datacontenttype": "application/json", "data": data,
    });
    Outgoing {
        exchange: topology.results_exchange.clone(),
        routing_key: format!("{kind}.{tenant}"),
        message_id: id,
        headers: vec![],
        body: serde_json::to_vec(&event).unwrap_or_default(),
        mandatory: true,
        persistent: true,
        correlation_id: None,
        reply_to: None,
    }
}
