//! PostgreSQL: pool, migrations, tenant import, KernelInput assembly, atomic cycles, outbox.
//! No business rules live here: the kernel decides, the worker says what to publish.
//!
//! Every transaction that touches one tenant's rows is scoped to that tenant first
//! (`tenant::tenant_tx`): the row-level security policies (migrations/V8) show it nothing
//! else. Work across tenants finds its keys through the `revenue_os` sweep functions and then
//! visits each tenant in turn (`tenant.rs`).
//!
//! The types below are the contract between the store and the worker; the `Store` methods
//! live in the submodules, one per job. Schema, assembly rules and the cycle's steps are
//! described in docs/store.md.

mod approvals;
mod assemble;
mod audit;
mod bench;
mod cached;
mod cycle;
mod database;
mod deviations;
mod error;
mod glance;
mod import;
mod ingest;
mod loads;
mod migrate;
mod operators;
mod outbox;
mod pool;
mod report_batch;
mod reports;
mod retention;
mod roles;
mod tenant;
mod tls;
mod views;
mod watch;
mod webhooks;

pub use approvals::{
    ApprovalFacts, ApprovalGate, ApprovalOutcome, ApprovalPolicy, ApprovalRequest, Gate, HeldFacts,
    PendingApproval, PolicySetBy,
};
pub use assemble::{ACTION_RESULTS_LOOKBACK_DAYS, Assembled};
pub use bench::{BenchCycle, MorningFacts, SeedAction};
pub use database::{database_name, target_address, url_as, url_with_database};

/// The README's command that starts the local PostgreSQL, for the message when it is down.
pub const START_COMMAND: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
pub use audit::AuditRow;
pub use deviations::{DailySeries, DeviationRow, StoredDeviation};
pub use error::StoreError;
pub use glance::{CampaignSpend, GlanceFacts};
pub use ingest::{Feed, LoadOutcome, LoadRequest, MAX_VIOLATIONS};
pub use loads::{LoadFollowUp, LoadReport, RejectView};
pub use operators::{OperatorRole, OperatorRow};
pub use reports::{
    ActionFacts, AppliedChange, Judgement, ReportOutcome, ReportPolicy, ReportResult, StoredReport,
};
pub use retention::{History, Partitioned, month_of};
pub use roles::{OWNER_ROLE, WORKER_ROLE, owner_role_sql, worker_grants_sql, worker_role_sql};
pub use views::{
    ActionView, CampaignView, CycleBrief, CycleDetail, DecisionView, OutcomeView, RejectedTrigger,
    TenantSummary,
};
pub use watch::{
    Evaluation, StoredEvaluation, WatchDecision, WatchFacts, WatchNeeds, WatchPolicy, WatchVerdict,
    Watched,
};
pub use webhooks::{AttemptEnd, ClaimedDelivery, DeliveryView, NewDelivery, Router, TenantWebhook};

use crate::contract::{DateRange, KernelError, KernelInput, KernelOutput, Levers, Trigger};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Runs a store call under a client-side deadline. Server-side timeouts cannot fire when the
/// link is silent (a blackhole, a proxy that stopped forwarding), so long-lived callers bound
/// every call with this; a dropped call leaves its transaction to the server to roll back.
pub async fn bounded<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or(Err(StoreError::Deadline(deadline)))
}

/// A message the outbox will publish. Built by the worker, stored and relayed.
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
    /// How the outbox keeps `body`.
    pub stored: StoredBody,
}

/// How the outbox keeps a message's body. A body made of what the cycle's own rows hold is
/// kept by reference, not copied (migration V19), and rebuilt from them when the row is read
/// back: the same JSON, though its bytes may differ in spacing and key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoredBody {
    /// The bytes as they are.
    #[default]
    Verbatim,
    /// This JSON object with the message's action (`actions.action`) under `"action"`.
    AroundAction(Box<serde_json::Value>),
    /// The message's cycle's output (`cycles.output`).
    CycleOutput,
}

/// A stored outbox row awaiting publication.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// None for a message of no cycle (a deviation's trigger).
    pub cycle_id: Option<Uuid>,
    pub tenant_id: Uuid,
    pub attempts: i32,
    pub message: OutboxMessage,
}

/// Names one outbox row to the calls that change it after publishing: the row's id and the
/// tenant whose transaction may touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutboxKey {
    pub tenant_id: Uuid,
    pub id: i64,
}

impl OutboxRow {
    pub fn key(&self) -> OutboxKey {
        OutboxKey {
            tenant_id: self.tenant_id,
            id: self.id,
        }
    }
}

/// One trigger to turn into one cycle. Everything in it is already parsed: the store reads
/// typed values and never re-checks the wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleRequest {
    /// The idempotency key (AMQP message_id), scoped to `tenant_id`: two tenants may use the
    /// same id for triggers of their own.
    pub message_id: String,
    pub tenant_id: Uuid,
    pub trigger: Trigger,
    /// `trigger.triggered_at`, parsed.
    pub triggered_at: DateTime<Utc>,
    /// The analysis window, resolved (the caller applies the default).
    pub window: DateRange,
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

/// The tenant's latest decided cycle (completed, or skipped by the decision with a
/// `skip_reason`): the fact `CyclePolicy::admit` judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastCycle {
    pub cycle_id: Uuid,
    pub executed_at: DateTime<Utc>,
}

/// The rules of a cycle, supplied by the caller (the worker). The store holds the locks,
/// the idempotency and the persistence; it asks the policy, inside the transaction and under
/// the tenant lock, whether to run, what to decide and what to publish.
pub trait CyclePolicy: Sync {
    /// Refuses a request outright, before admission and assembly (e.g. a window longer than
    /// the policy allows): `Err` records a `failed` cycle with that error. The default
    /// accepts every request.
    fn check(&self, _req: &CycleRequest) -> Result<(), KernelError> {
        Ok(())
    }
    /// `Err` skips the cycle (recorded as `skipped` with that error).
    fn admit(&self, last: Option<&LastCycle>, now: DateTime<Utc>) -> Result<(), KernelError>;
    /// The decision on the assembled input and the levers' known state; `Err` records a
    /// `failed` cycle.
    fn decide(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> Result<KernelOutput, KernelError>;
    /// `decide` plus the reasoning trace as text, stored with the cycle (`cycles.trace`) for
    /// the console. The default records no trace.
    fn decide_explained(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> (Result<KernelOutput, KernelError>, Option<String>) {
        (self.decide(input, levers, now, cycle_id), None)
    }
    /// A decision error that is no failure: the cycle is recorded `skipped` with this reason
    /// (`cycles.skip_reason`, no error code) and counts as decided for `admit`. The default:
    /// every decision error is a failure.
    fn skip_reason(&self, _error: &KernelError) -> Option<&'static str> {
        None
    }
    /// What the finished cycle publishes (stored verbatim in the outbox, in the same
    /// transaction) and which of its actions wait for a person instead.
    fn plan(
        &self,
        cycle_id: Uuid,
        result: &Result<KernelOutput, KernelError>,
        status: CycleStatus,
        approvals: &ApprovalFacts,
    ) -> Plan;
}

/// A cycle's plan: its messages, and the actions held for approval (no message for those).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub messages: Vec<OutboxMessage>,
    /// (action_id, why it needs a person).
    pub held: Vec<(String, String)>,
}

/// What `run_cycle` did. Domain outcomes are values here, not errors: `StoreError` is only
/// for the database failing.
#[derive(Debug, Clone, PartialEq)]
pub enum CycleOutcome {
    /// A cycle row exists (completed, failed or skipped).
    Recorded {
        cycle_id: Uuid,
        status: CycleStatus,
        result: Result<Box<KernelOutput>, KernelError>,
        /// Outbox rows of this cycle not yet published (empty once all are confirmed).
        pending: Vec<OutboxRow>,
        /// The message_id already had a cycle: its stored result is returned, nothing ran.
        replayed: bool,
    },
    /// No such tenant: no cycle row (no tenant to own it); recorded in `rejected_triggers`.
    UnknownTenant,
}

#[derive(Clone)]
pub struct Store {
    pool: deadpool_postgres::Pool,
    /// The server the newest connection or `ping` reached (`host:port`): the primary, with a
    /// multi-host DSN and target_session_attrs=read-write.
    primary: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Advisory-lock key of a tenant: cycles and imports of one tenant take turns. Public so a
/// test can hold a tenant's lock the way the store takes it.
pub fn tenant_lock_key(tenant: Uuid) -> i64 {
    let (hi, lo) = tenant.as_u64_pair();
    (hi ^ lo) as i64
}
