//! PostgreSQL: pool, migrations, tenant import, KernelInput assembly, atomic cycles, outbox.
//! No business rules live here: the kernel decides, the worker says what to publish.
//!
//! The types below are the contract between the store and the worker; the `Store` methods
//! live in the submodules, one per job. Schema, assembly rules and the cycle's steps are
//! described in docs/store.md.

mod assemble;
mod cycle;
mod database;
mod error;
mod import;
mod migrate;
mod outbox;
mod pool;

pub use assemble::{ACTION_RESULTS_LOOKBACK_DAYS, DEFAULT_WINDOW_DAYS, default_window};
pub use database::url_with_database;
pub use error::StoreError;

use crate::contract::{AnalysisWindow, KernelError, KernelOutput, Trigger};
use uuid::Uuid;

/// A message the outbox will publish. Built by the worker, stored and relayed verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub exchange: String,
    pub routing_key: String,
    /// AMQP message_id; unique across the outbox.
    pub message_id: String,
    /// AMQP headers as a JSON object of strings.
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    /// The action this message carries, if it is an action message (marks `actions.status`).
    pub action_id: Option<String>,
}

/// A stored outbox row awaiting publication.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub cycle_id: Uuid,
    pub tenant_id: Uuid,
    pub attempts: i32,
    pub message: OutboxMessage,
}

/// One trigger to turn into one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleRequest {
    /// The idempotency key (AMQP message_id).
    pub message_id: String,
    pub tenant_id: Uuid,
    pub trigger: Trigger,
    /// None: the 30 days ending yesterday (UTC) relative to `now`.
    pub analysis_window: Option<AnalysisWindow>,
    /// The id to give the cycle if one is created.
    pub cycle_id: Uuid,
}

/// Status a cycle row ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleStatus {
    Completed,
    Failed,
    Skipped,
}

/// What `run_cycle` did. `replayed` is true when the message_id already had a cycle and the
/// stored result is returned instead of running again.
#[derive(Debug, Clone, PartialEq)]
pub enum CycleOutcome {
    /// A cycle row exists (completed, failed or skipped).
    Recorded {
        cycle_id: Uuid,
        status: CycleStatus,
        result: Result<Box<KernelOutput>, KernelError>,
        /// Outbox rows of this cycle not yet published (empty once all are confirmed).
        pending: Vec<OutboxRow>,
        replayed: bool,
    },
    /// TENANT_NOT_FOUND: no cycle row (no tenant to own it); recorded in `rejected_triggers`.
    Rejected { error: KernelError },
}

/// Builds the outbox messages of a finished cycle (its actions and its cycle event; replies
/// are sent directly, not through the outbox). The worker
/// supplies it so the store stays free of naming and routing rules.
pub type OutboxPlan<'a> = &'a (
        dyn Fn(Uuid, &Result<KernelOutput, KernelError>, CycleStatus) -> Vec<OutboxMessage> + Sync
    );

#[derive(Clone)]
pub struct Store {
    pool: deadpool_postgres::Pool,
}

/// Advisory-lock key of a tenant: cycles and imports of one tenant take turns.
pub(crate) fn tenant_lock_key(tenant: Uuid) -> i64 {
    let (hi, lo) = tenant.as_u64_pair();
    (hi ^ lo) as i64
}
