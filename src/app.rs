//! Composition: the one place that turns settings into running parts (rules, stores, the worker
//! service) and that each subcommand calls. Modules below it never read `Settings` to decide.

pub mod ingest;

use crate::broker::Topology;
use crate::config::{CONSOLE_TOKEN_ENV, KernelSettings, Settings};
use crate::console::Console;
use crate::contract::catalog::Catalog;
use crate::contract::{
    DateRange, KernelError, KernelInput, Trigger, decode_input, validate_content,
};
use crate::error::Error;
use crate::kernel::KernelParams;
use crate::store::{
    ApprovalOutcome, ApprovalRequest, Assembled, HeldFacts, OutboxMessage, Store, Watched,
};
use crate::watchdog::Watchdog;
use crate::worker::{Planner, Rules, Worker, ops};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The kernel's tunables: its documented defaults, with the ones `config` exposes.
pub fn kernel_params(settings: &KernelSettings) -> KernelParams {
    KernelParams {
        stale_after_days: i32::try_from(settings.stale_after_days).unwrap_or(i32::MAX),
        ..KernelParams::default()
    }
}

/// The rules a worker judges cycles by.
pub fn rules(settings: &Settings, catalog: Catalog) -> Rules {
    Rules {
        catalog: Arc::new(catalog),
        params: kernel_params(&settings.kernel),
        min_cycle_interval_hours: settings.kernel.min_cycle_interval_hours,
        max_window_days: settings.kernel.max_window_days,
    }
}

/// A worker for these settings.
pub fn worker(settings: &Settings, store: Store, catalog: Catalog) -> Worker {
    Worker::new(settings.clone(), store, rules(settings, catalog))
}

/// Connects to the configured database, creating it first when `create`.
pub async fn store(settings: &Settings, create: bool) -> Result<Store, Error> {
    if create {
        Store::create_database_if_missing(&settings.database).await?;
    }
    Ok(Store::connect(&settings.database).await?)
}

/// The `worker` process: database (and migrations when configured), the ops endpoints, the
/// loop. Runs until `shutdown` is cancelled, then drains and returns.
pub async fn serve(
    settings: Settings,
    catalog: Catalog,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let token = console_token();
    let console_on = !settings.console.listen.is_empty();
    if console_on {
        // Refuse an open console before anything starts.
        crate::console::check_listen(&settings.console.listen, token.as_deref())?;
    }
    let migrate = settings.database.migrate_on_start;
    let store = store(&settings, migrate).await?;
    if migrate {
        // Up to date, this runs no DDL: a worker whose role has none starts fine, and one
        // whose schema is behind fails here saying the owner must migrate first.
        match store.migrate().await? {
            0 => tracing::info!("migrations up to date"),
            applied => tracing::info!(applied, "migrations applied"),
        }
    }
    let console_catalog = catalog.clone();
    let console_store = store.clone();
    let worker = worker(&settings, store.clone(), catalog);
    let state = ops::OpsState {
        store,
        status: worker.status(),
        metrics: ops::install_metrics(),
        wedged_after: std::time::Duration::from_secs(settings.worker.wedged_after_secs.max(1)),
    };
    let (addr, ops_task) = ops::serve(&settings.http.listen, state, shutdown.clone())
        .await
        .map_err(|e| Error::Listen {
            addr: settings.http.listen.clone(),
            source: e,
        })?;
    tracing::info!(%addr, "ops endpoints listening");
    let console_task = if console_on {
        let c = console(&settings, console_store, &console_catalog, token);
        Some(start_console(&settings.console.listen, c, shutdown.clone()).await?)
    } else {
        None
    };
    let result = worker.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = ops_task.await;
    if let Some(t) = console_task {
        let _ = t.await;
    }
    Ok(result?)
}

/// The operator token from the environment (`REVENUE_OS_CONSOLE_TOKEN`); empty is none.
pub fn console_token() -> Option<String> {
    std::env::var(CONSOLE_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
}

/// The console over `store` for these settings: it peeks at the dead-letter queue under
/// `amqp.prefix`, and writes only with `token`.
pub fn console(
    settings: &Settings,
    store: Store,
    catalog: &Catalog,
    token: Option<String>,
) -> Console {
    Console {
        store: store.clone(),
        catalog: Arc::new(catalog.clone()),
        token,
        approver: Some(Arc::new(ConsoleApprover {
            store,
            settings: settings.clone(),
            catalog: catalog.clone(),
        })),
        dead_queue: Some(Arc::new(crate::broker::DeadQueueReader::new(
            settings.amqp.clone(),
            Topology::from_settings(&settings.amqp, catalog),
        ))),
    }
}

/// The console's approve/reject: `decide`, the same as the CLI's.
struct ConsoleApprover {
    store: Store,
    settings: Settings,
    catalog: Catalog,
}

impl crate::console::Approver for ConsoleApprover {
    fn decide(
        &self,
        cycle_id: uuid::Uuid,
        action_id: String,
        request: ApprovalRequest,
    ) -> futures_util::future::BoxFuture<'_, Result<ApprovalOutcome, String>> {
        Box::pin(async move {
            decide(
                &self.store,
                &self.settings,
                &self.catalog,
                cycle_id,
                &action_id,
                request,
            )
            .await
            .map_err(|e| e.to_string())
        })
    }

    fn release_preview(
        &self,
        tenant: uuid::Uuid,
        cycle_id: uuid::Uuid,
        action: &crate::contract::Action,
    ) -> Option<(String, String, String, String)> {
        let m = planner(&self.settings, &self.catalog).action_message(tenant, cycle_id, "", action);
        Some((
            m.exchange,
            m.routing_key,
            m.message_id,
            String::from_utf8_lossy(&m.body).into_owned(),
        ))
    }
}

async fn start_console(
    listen: &str,
    console: Console,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let writable = console.token.is_some();
    let (addr, task) = crate::console::serve(listen, console, shutdown).await?;
    tracing::info!(%addr, writable, "console listening");
    Ok(task)
}

/// `revenue-os console`: the console alone, until `shutdown`.
pub async fn serve_console(
    settings: Settings,
    catalog: Catalog,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let token = console_token();
    let listen = if settings.console.listen.is_empty() {
        "127.0.0.1:9465".to_owned()
    } else {
        settings.console.listen.clone()
    };
    crate::console::check_listen(&listen, token.as_deref())?;
    let store = store(&settings, false).await?;
    let c = console(&settings, store, &catalog, token);
    let task = start_console(&listen, c, shutdown).await?;
    Ok(task.await?)
}

/// Decodes and validates a tenant document (as `kernel` does, minus the trigger-age rule: a
/// backfill carries a trigger only because it is KernelInput-shaped).
pub fn checked_document(bytes: &[u8], catalog: &Catalog) -> Result<KernelInput, KernelError> {
    let input = decode_input(bytes)?;
    validate_content(&input, catalog)?;
    Ok(input)
}

/// The watchdog for these settings (it publishes under `amqp.prefix`).
pub fn watchdog(settings: &Settings, catalog: &Catalog) -> Watchdog {
    Watchdog {
        topology: Topology::from_settings(&settings.amqp, catalog),
        clock: crate::clock::Clock::system(),
    }
}

/// One watchdog sweep over `tenant` (or every tenant). Reverts and escalations go to the
/// outbox; a running worker's relay publishes them.
pub async fn watch(
    store: &Store,
    settings: &Settings,
    catalog: &Catalog,
    tenant: Option<uuid::Uuid>,
) -> Result<Vec<Watched>, Error> {
    Ok(crate::watchdog::sweep(store, &watchdog(settings, catalog), tenant).await?)
}

/// `import`: one validated document into the database, in one transaction, then a watchdog
/// sweep of that tenant (new metric days may complete an abort condition or a window).
pub async fn import(
    settings: &Settings,
    catalog: &Catalog,
    bytes: &[u8],
) -> Result<serde_json::Value, Error> {
    let input = checked_document(bytes, catalog)?;
    let store = store(settings, false).await?;
    store.import(&input, catalog).await?;
    let tenant = uuid::Uuid::parse_str(&input.tenant_id)
        .map_err(|_| Error::Run(format!("tenant_id {} is not a UUID", input.tenant_id)))?;
    let watched = watch(&store, settings, catalog, Some(tenant)).await?;
    Ok(serde_json::json!({
        "watchdog_evaluations": watched.len(),
        "imported": input.tenant_id,
        "metrics": input.metrics.len(),
        "revenue_events": input.revenue_events.len(),
        "campaigns": input.campaigns.len(),
        "opportunities": input.opportunities.len(),
        "action_results": input.recent_action_results.as_ref().map_or(0, Vec::len),
    }))
}

/// `assemble`: what a cycle would see for this tenant, trigger and window: the KernelInput
/// and the levers' known state.
pub async fn assemble(
    settings: &Settings,
    tenant: uuid::Uuid,
    trigger: Trigger,
    triggered_at: DateTime<Utc>,
    window: Option<DateRange>,
) -> Result<Assembled, Error> {
    let store = store(settings, false).await?;
    let window = window.unwrap_or_else(|| DateRange::default_for(triggered_at));
    store
        .assemble(tenant, &trigger, triggered_at, window)
        .await?
        .ok_or_else(|| Error::Kernel(KernelError::tenant_not_found(tenant)))
}

/// The approval rules for these settings, releasing an approved action through `planner`.
fn approval_rules<'a>(
    settings: &Settings,
    message: &'a (dyn Fn(&HeldFacts) -> OutboxMessage + Sync),
) -> crate::approvals::Rules<'a> {
    crate::approvals::Rules {
        ttl: chrono::Duration::hours(i64::from(settings.approval.ttl_hours)),
        message,
    }
}

/// The planner that names exchanges under `amqp.prefix`.
fn planner(settings: &Settings, catalog: &Catalog) -> Planner {
    Planner::new(Topology::from_settings(&settings.amqp, catalog))
}

/// A person's decision on a held action (`approve`, `reject`, the console). Approving writes
/// the action's outbox row in the same transaction; a running worker's relay publishes it.
pub async fn decide(
    store: &Store,
    settings: &Settings,
    catalog: &Catalog,
    cycle_id: uuid::Uuid,
    action_id: &str,
    request: ApprovalRequest,
) -> Result<ApprovalOutcome, Error> {
    let planner = planner(settings, catalog);
    let executed_at = store.cycle_executed_at(cycle_id).await?;
    let message = |f: &HeldFacts| {
        let at = executed_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        planner.action_message(
            f.tenant_id,
            f.cycle_id,
            at.as_deref().unwrap_or(""),
            &f.action,
        )
    };
    let rules = approval_rules(settings, &message);
    let outcome = store
        .decide_approval(cycle_id, action_id, &request, &rules, chrono::Utc::now())
        .await?;
    crate::telemetry::metrics::approval(crate::approvals::label(&outcome));
    Ok(outcome)
}

/// Changes to a tenant's approval policy (`tenant policy`); unset fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct PolicyEdit {
    pub require: Vec<String>,
    pub max_added_spend: Option<f64>,
    pub max_budget_step_pct: Option<f64>,
    pub first_days: Option<i32>,
    pub two_approvers: Vec<String>,
    /// Start from the default (nothing held).
    pub clear: bool,
}

/// Applies `edit` to the tenant's approval policy (nothing to apply: just reads it).
pub async fn edit_policy(
    store: &Store,
    tenant: uuid::Uuid,
    edit: PolicyEdit,
) -> Result<crate::store::ApprovalPolicy, Error> {
    let current = store.approval_policy(tenant).await?;
    let changes = edit.clear
        || !edit.require.is_empty()
        || edit.max_added_spend.is_some()
        || edit.max_budget_step_pct.is_some()
        || edit.first_days.is_some()
        || !edit.two_approvers.is_empty();
    let mut p = if edit.clear { None } else { current }.unwrap_or_default();
    if !edit.require.is_empty() {
        p.require = edit.require;
    }
    p.max_added_spend = edit.max_added_spend.or(p.max_added_spend);
    p.max_budget_step_pct = edit.max_budget_step_pct.or(p.max_budget_step_pct);
    p.first_days = edit.first_days.or(p.first_days);
    if !edit.two_approvers.is_empty() {
        p.two_approvers = edit.two_approvers;
    }
    if changes && !store.set_approval_policy(tenant, &p).await? {
        return Err(Error::Kernel(KernelError::tenant_not_found(tenant)));
    }
    Ok(p)
}
