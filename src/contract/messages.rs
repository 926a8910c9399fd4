//! Messages on the broker: the trigger the worker consumes and the action message it publishes.

use super::types::{Action, AnalysisWindow, Trigger, Version};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Body of a trigger message (AMQP `message_id` is the idempotency key, `content_type`
/// `application/json`). Without `analysis_window` the cycle covers the 30 days ending yesterday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerMessage {
    /// UUID of the tenant.
    pub tenant_id: String,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_window: Option<AnalysisWindow>,
}

/// Body of each message on `<prefix>.actions.<subsystem>`, routing key `<type>.<tenant_id>`,
/// AMQP `message_id` `<cycle_id>:<action_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionMessage {
    pub version: Version,
    pub tenant_id: String,
    pub cycle_id: String,
    pub executed_at: String,
    pub action: Action,
}

/// SHA-256 (hex) of an action's wire form: what an approval is bound to. The same action gives
/// the same hash; any change to it (a value, a guardrail, a note) gives another.
pub fn action_hash(action: &Action) -> String {
    let bytes = serde_json::to_vec(action).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
