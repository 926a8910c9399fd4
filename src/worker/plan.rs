//! What a finished cycle publishes: one message per action on its subsystem's exchange, then
//! the cycle event. The store persists these in the outbox (the `OutboxPlan`): an action's
//! and an output's body by reference to the rows the cycle writes anyway (`StoredBody`).

use crate::broker::{Outgoing, Topology};
use crate::contract::{Action, ActionMessage, KernelError, KernelOutput, Trigger, Version};
use crate::store::{CycleStatus, OutboxMessage, StoredBody};
use serde::Serialize;
use serde_json::json;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The trigger a plan is made for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanContext {
    pub tenant_id: Uuid,
    pub message_id: String,
    pub trigger: Trigger,
}

/// Body of `failed.<tenant>` / `skipped.<tenant>` events and error replies: the KernelError's
/// fields plus what identifies the trigger.
#[derive(Debug, Serialize)]
pub struct CycleFailure<'a> {
    #[serde(flatten)]
    pub error: &'a KernelError,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle_id: Option<String>,
    pub message_id: &'a str,
    pub trigger: &'a Trigger,
}

/// `<cycle_id>:<action_id>`: stable across redeliveries and replays, so executors can dedupe.
pub fn action_message_id(cycle_id: Uuid, action_id: &str) -> String {
    format!("{cycle_id}:{action_id}")
}

/// `<cycle_id>:cycle`.
pub fn event_message_id(cycle_id: Uuid) -> String {
    format!("{cycle_id}:cycle")
}

fn headers(pairs: &[(&str, String)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_owned(), Value::String(v.clone()));
    }
    Value::Object(m)
}

/// The body a cycle announces: the KernelOutput, or a `CycleFailure`.
pub fn result_body(
    ctx: &PlanContext,
    cycle_id: Option<Uuid>,
    result: &Result<KernelOutput, KernelError>,
) -> Vec<u8> {
    let bytes = match result {
        Ok(out) => serde_json::to_vec(out),
        Err(error) => serde_json::to_vec(&CycleFailure {
            error,
            tenant_id: ctx.tenant_id.to_string(),
            cycle_id: cycle_id.map(|c| c.to_string()),
            message_id: &ctx.message_id,
            trigger: &ctx.trigger,
        }),
    };
    // Serialising these plain structs cannot fail; an empty body would still be delivered.
    bytes.unwrap_or_default()
}

/// Makes the outbox messages for a cycle.
#[derive(Debug, Clone)]
pub struct Planner {
    topology: Topology,
}

impl Planner {
    pub fn new(topology: Topology) -> Self {
        Self { topology }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// One action's message on its subsystem's exchange.
    pub fn action_message(
        &self,
        tenant_id: Uuid,
        cycle_id: Uuid,
        executed_at: &str,
        action: &Action,
    ) -> OutboxMessage {
        let tenant = tenant_id.to_string();
        let cycle = cycle_id.to_string();
        let body = ActionMessage {
            version: Version::V1,
            tenant_id: tenant.clone(),
            cycle_id: cycle.clone(),
            executed_at: executed_at.to_owned(),
            action: action.clone(),
        };
        OutboxMessage {
            exchange: self.topology.action_exchange(action.owner_subsystem),
            routing_key: format!("{}.{tenant}", action.kind),
            message_id: action_message_id(cycle_id, &action.action_id),
            headers: headers(&[
                ("tenant_id", tenant),
                ("cycle_id", cycle),
                ("action_id", action.action_id.clone()),
                ("version", Version::V1.as_str().to_owned()),
            ]),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            action_id: Some(action.action_id.clone()),
            // The action is in its `actions` row already: the outbox keeps the rest.
            stored: StoredBody::AroundAction(Box::new(json!({
                "version": body.version,
                "tenant_id": body.tenant_id,
                "cycle_id": body.cycle_id,
                "executed_at": body.executed_at,
            }))),
        }
    }

    /// Actions in priority order (but those `held` for approval), then the cycle event.
    pub fn messages(
        &self,
        ctx: &PlanContext,
        cycle_id: Uuid,
        result: &Result<KernelOutput, KernelError>,
        status: CycleStatus,
        held: &[&str],
    ) -> Vec<OutboxMessage> {
        let tenant = ctx.tenant_id.to_string();
        let cycle = cycle_id.to_string();
        let mut out = Vec::new();
        if let Ok(output) = result {
            let mut actions: Vec<_> = output
                .actions
                .iter()
                .filter(|a| !held.contains(&a.action_id.as_str()))
                .collect();
            actions.sort_by_key(|a| a.priority);
            for action in actions {
                out.push(self.action_message(ctx.tenant_id, cycle_id, &output.executed_at, action));
            }
        }
        let status = status.as_str();
        out.push(OutboxMessage {
            exchange: self.topology.cycles_exchange.clone(),
            routing_key: format!("{status}.{tenant}"),
            message_id: event_message_id(cycle_id),
            headers: headers(&[
                ("tenant_id", tenant.clone()),
                ("cycle_id", cycle.clone()),
                ("status", status.to_owned()),
                ("trigger_message_id", ctx.message_id.clone()),
                ("version", Version::V1.as_str().to_owned()),
            ]),
            body: result_body(ctx, Some(cycle_id), result),
            action_id: None,
            // A KernelOutput is the cycle row's `output`; a failure is kept as it is.
            stored: match result {
                Ok(_) => StoredBody::CycleOutput,
                Err(_) => StoredBody::Verbatim,
            },
        });
        out
    }
}

/// How an outbox message goes on the wire. Action messages are mandatory (a missing executor
/// queue must keep the row pending); cycle events are announcements and need no listener.
pub fn to_outgoing(m: &OutboxMessage) -> Outgoing {
    let headers = m
        .headers
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    Outgoing {
        exchange: m.exchange.clone(),
        routing_key: m.routing_key.clone(),
        message_id: m.message_id.clone(),
        headers,
        body: m.body.clone(),
        mandatory: m.action_id.is_some(),
        persistent: true,
        correlation_id: None,
        reply_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::catalog::Catalog;
    use crate::contract::{ErrorCode, TriggerType};

    fn ctx() -> PlanContext {
        PlanContext {
            tenant_id: Uuid::nil(),
            message_id: "m-1".into(),
            trigger: Trigger {
                kind: TriggerType::Manual,
                source: "cli".into(),
                triggered_at: "2026-11-26T06:00:00Z".into(),
            },
        }
    }

    fn output() -> KernelOutput {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/valid/demand_bound.json"
        ))
        .unwrap();
        let now = crate::contract::parse_timestamp("2026-11-26T06:05:00Z").unwrap();
        crate::kernel::run(
            &bytes,
            &crate::contract::Levers::default(),
            &Catalog::embedded().unwrap(),
            now,
            Uuid::nil(),
        )
        .unwrap()
    }

    #[test]
    fn actions_go_to_their_subsystem_exchange_then_the_event() {
        let planner = Planner::new(Topology::new("p", &Catalog::embedded().unwrap(), 5));
        let out = output();
        let cycle = Uuid::new_v4();
        let msgs = planner.messages(&ctx(), cycle, &Ok(out.clone()), CycleStatus::Completed, &[]);
        assert_eq!(msgs.len(), out.actions.len() + 1);
        for (m, a) in msgs.iter().zip(&out.actions) {
            assert_eq!(m.exchange, format!("p.actions.{}", a.owner_subsystem));
            assert_eq!(m.routing_key, format!("{}.{}", a.kind, Uuid::nil()));
            assert_eq!(m.message_id, format!("{cycle}:{}", a.action_id));
            assert_eq!(m.headers["action_id"], a.action_id.as_str());
            assert_eq!(m.headers["cycle_id"], cycle.to_string().as_str());
            assert_eq!(m.headers["version"], "revenue_os_v1");
            let body: ActionMessage = serde_json::from_slice(&m.body).unwrap();
            assert_eq!(&body.action, a);
            assert!(to_outgoing(m).mandatory);
        }
        let ev = msgs.last().unwrap();
        assert_eq!(ev.exchange, "p.cycles");
        assert_eq!(ev.routing_key, format!("completed.{}", Uuid::nil()));
        assert!(!to_outgoing(ev).mandatory);
        let body: KernelOutput = serde_json::from_slice(&ev.body).unwrap();
        assert_eq!(body, out);
    }

    #[test]
    fn errors_announce_the_kernel_error_with_the_trigger() {
        let planner = Planner::new(Topology::new("p", &Catalog::embedded().unwrap(), 5));
        let err = KernelError::new(ErrorCode::CycleTooRecent, "too soon");
        let msgs = planner.messages(&ctx(), Uuid::nil(), &Err(err), CycleStatus::Skipped, &[]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].routing_key, format!("skipped.{}", Uuid::nil()));
        let v: Value = serde_json::from_slice(&msgs[0].body).unwrap();
        assert_eq!(v["code"], "CYCLE_TOO_RECENT");
        assert_eq!(v["error"], true);
        assert_eq!(v["message_id"], "m-1");
        assert_eq!(v["trigger"]["type"], "manual");
        assert_eq!(v["tenant_id"], Uuid::nil().to_string());
    }
}
