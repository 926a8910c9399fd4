//! What the product knows of each lever: the value an executor reported it set, since when
//! and by which action. It travels beside the `KernelInput` (the wire contract does not
//! change), so a cycle stays reproducible offline: `assemble --levers-out` writes it,
//! `kernel --levers` reads it.

use super::types::Subsystem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownLever {
    pub subsystem: Subsystem,
    /// The campaign, sequence, … it belongs to; absent for a tenant-wide setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    pub field: String,
    /// The value the executor reported writing.
    pub value: Value,
    /// The value the executor reported reading just before that write (its `before`): what a
    /// revert of that action restores. Absent when unknown (`null` means the field was unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// RFC 3339: when it was applied.
    pub since: String,
    /// The action that set it.
    pub cycle_id: String,
    pub action_id: String,
}

/// The known state of a tenant's levers, sorted by (subsystem, entity, field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Levers {
    pub levers: Vec<KnownLever>,
}

impl Levers {
    pub fn new(mut levers: Vec<KnownLever>) -> Self {
        levers.sort_by(|a, b| {
            (a.subsystem, &a.entity_id, &a.field).cmp(&(b.subsystem, &b.entity_id, &b.field))
        });
        Self { levers }
    }

    /// The known value of one field, if an executor has reported it.
    pub fn get(
        &self,
        subsystem: Subsystem,
        entity_id: Option<&str>,
        field: &str,
    ) -> Option<&KnownLever> {
        self.levers.iter().find(|l| {
            l.subsystem == subsystem && l.entity_id.as_deref() == entity_id && l.field == field
        })
    }

    pub fn is_empty(&self) -> bool {
        self.levers.is_empty()
    }
}
