//! The approvals queue as the console reads it.
//!
//! PENDING the approvals module (issue 12, items 1–2): until `Store::pending_approvals`
//! lands, nothing is listed.

use crate::contract::Action;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An action held for a person, with the hash of the action as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub tenant_id: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub action: Action,
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

pub async fn pending(_store: &Store, _tenant: Option<Uuid>) -> Result<Vec<Pending>, StoreError> {
    Ok(Vec::new())
}
