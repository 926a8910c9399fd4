//! PostgreSQL: pool, migrations, tenant import, KernelInput assembly, atomic cycles, outbox.
//! No business rules live here: the kernel decides, the worker says what to publish.
//!
//! INTERFACE SKELETON: the signatures below are the contract between the store (issue 4) and the
//! worker (issue 5). Bodies are filled in by the store work; keep the signatures stable.

use crate::catalog::Catalog;
use crate::config::{DatabaseSettings, KernelSettings};
use crate::contract::{AnalysisWindow, KernelError, KernelInput, KernelOutput, Trigger};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("migration: {0}")]
    Migrate(String),
    /// A contract outcome such as INVALID_INPUT on import.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

impl StoreError {
    /// Connection loss, serialization failure, deadlock, pool timeout: worth retrying.
    pub fn is_retryable(&self) -> bool {
        todo!("store issue")
    }
}

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

/// Builds the outbox messages of a finished cycle (actions, cycle event, reply). The worker
/// supplies it so the store stays free of naming and routing rules.
pub type OutboxPlan<'a> = &'a (
        dyn Fn(Uuid, &Result<KernelOutput, KernelError>, CycleStatus) -> Vec<OutboxMessage> + Sync
    );

#[derive(Clone)]
pub struct Store {
    pool: deadpool_postgres::Pool,
}

impl Store {
    /// Pool with `RecyclingMethod::Verified`, connect timeout and keepalives.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let _ = settings;
        todo!("store issue")
    }

    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }

    /// Applies embedded refinery migrations; a no-op when up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        todo!("store issue")
    }

    /// `SELECT 1` through the pool (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        todo!("store issue")
    }

    /// Validates (same errors as `kernel`, minus the trigger-age rule) and upserts a tenant
    /// document in one transaction.
    pub async fn import(&self, input: &KernelInput, catalog: &Catalog) -> Result<(), StoreError> {
        let _ = (input, catalog);
        todo!("store issue")
    }

    /// The KernelInput the worker would hand the kernel.
    pub async fn assemble(
        &self,
        tenant_id: Uuid,
        trigger: &Trigger,
        window: &AnalysisWindow,
    ) -> Result<KernelInput, StoreError> {
        let _ = (tenant_id, trigger, window);
        todo!("store issue")
    }

    /// One cycle in one transaction: advisory lock, idempotency, tenant check, interval check,
    /// assemble, `kernel::decide`, persist cycle + actions + data-quality actions + outbox.
    pub async fn run_cycle(
        &self,
        req: &CycleRequest,
        catalog: &Catalog,
        settings: &KernelSettings,
        now: DateTime<Utc>,
        plan: OutboxPlan<'_>,
    ) -> Result<CycleOutcome, StoreError> {
        let _ = (req, catalog, settings, now, plan);
        todo!("store issue")
    }

    /// Up to `limit` unpublished outbox rows, oldest first (for the sweeper).
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let _ = limit;
        todo!("store issue")
    }

    /// The broker confirmed the row: set `published_at` and, for an action, `actions.status =
    /// 'published'`.
    pub async fn mark_published(&self, outbox_id: i64) -> Result<(), StoreError> {
        let _ = outbox_id;
        todo!("store issue")
    }

    /// A nack or a return: count the attempt and keep the row pending.
    pub async fn record_publish_failure(
        &self,
        outbox_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _ = (outbox_id, reason);
        todo!("store issue")
    }
}
