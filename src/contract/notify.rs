//! The events a webhook may subscribe to (`notify.webhooks[].events`, `webhook add
//! --events`), as stored in `notifications.event` and sent in a body's `event` field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

macro_rules! events {
    ($($variant:ident = $wire:literal;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum NotifyEvent { $($variant),+ }

        impl NotifyEvent {
            pub const ALL: &'static [NotifyEvent] = &[$(NotifyEvent::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(NotifyEvent::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some(NotifyEvent::$variant),)+ _ => None }
            }
        }
    };
}

events! {
    ActionHeld = "action_held";
    ApprovalDecided = "approval_decided";
    ApprovalExpired = "approval_expired";
    ApprovalSuperseded = "approval_superseded";
    RevertPublished = "revert_published";
    WatchdogEscalation = "watchdog_escalation";
    DeviationDetected = "deviation_detected";
    TriggerDeadLettered = "trigger_dead_lettered";
    LoadRejected = "load_rejected";
}

/// One state change to tell people about, as recorded (`notifications`) and rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The stored row's id (0 before it is recorded).
    pub id: i64,
    pub event: NotifyEvent,
    pub tenant_id: Option<Uuid>,
    pub cycle_id: Option<Uuid>,
    pub action_id: Option<String>,
    /// What changed, unique per event (`<cycle>:<action>`, a load id and tenant, …): a second
    /// record of the same change is no new notification.
    pub subject: String,
    pub occurred_at: DateTime<Utc>,
    /// Event-specific names and numbers (docs/notifications.md lists them).
    pub details: Value,
}

impl Notification {
    pub fn new(
        event: NotifyEvent,
        subject: impl Into<String>,
        tenant_id: Option<Uuid>,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: 0,
            event,
            tenant_id,
            cycle_id: None,
            action_id: None,
            subject: subject.into(),
            occurred_at,
            details: Value::Object(Default::default()),
        }
    }

    /// About this action of this cycle.
    pub fn on_action(mut self, cycle_id: Uuid, action_id: &str) -> Self {
        self.cycle_id = Some(cycle_id);
        self.action_id = Some(action_id.to_owned());
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Whether a webhook subscribed to `events` (`*` for all) receives `event`.
pub fn subscribed(events: &[String], event: NotifyEvent) -> bool {
    events.iter().any(|e| e == "*" || e == event.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_and_a_star_takes_all() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Some(*e));
            assert!(subscribed(&["*".into()], *e));
        }
        assert!(!subscribed(
            &["load_rejected".into()],
            NotifyEvent::ActionHeld
        ));
        assert_eq!(NotifyEvent::parse("nope"), None);
    }
}
