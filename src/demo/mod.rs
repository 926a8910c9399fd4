//! The walkthrough a new user runs first: create and migrate the database, import a tenant,
//! start a worker in-process, publish one trigger, and show every action as the executors
//! receive it from the broker. It uses the same library calls as production; nothing is faked.

use crate::broker::{self, Tap, Topology, TriggerClient};
use crate::config::{Settings, redact_url};
use crate::contract::catalog::Catalog;
use crate::contract::{
    ActionMessage, ActionStatus, KernelError, KernelOutput, Trigger, TriggerMessage, TriggerType,
};
use crate::error::Error;
use crate::store::Store;
use standin::StandIn;

pub mod simulation;
pub mod standin;
use chrono::{SecondsFormat, Utc};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs the walkthrough, writing a readable report line by line through `say`.
pub async fn run(
    mut settings: Settings,
    catalog: Catalog,
    document: &[u8],
    mut say: impl FnMut(&str),
) -> Result<(), Error> {
    // A demo is re-run; the 12-hour spacing would turn the second run into a skipped cycle.
    settings.kernel.min_cycle_interval_hours = 0;
    // The example tenant's days are its document's, not today's: the worker's retention must
    // not drop them once they are older than retention.data_days.
    settings.retention.data_days = 0;
    // An invalid document is a contract outcome (exit 2) before anything is touched.
    let input = crate::app::checked_document(document, &catalog)?;
    let tenant: uuid::Uuid = input
        .tenant_id
        .parse()
        .map_err(|_| Error::Kernel(KernelError::internal("tenant_id is not a UUID")))?;

    let created = Store::create_database_if_missing(&settings.database).await?;
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    say(&format!(
        "database  {} ({}), migrated",
        redact_url(&settings.database.url),
        if created { "created" } else { "exists" }
    ));
    store.import(&input, &catalog).await?;
    say(&format!(
        "tenant    {tenant} imported: {} metric points, {} revenue events, {} campaigns, {} open opportunities",
        input.metrics.len(),
        input.revenue_events.len(),
        input.campaigns.len(),
        input.opportunities.len()
    ));
    // The demo tenant asks a person before any routing change (`revenue-os tenant policy`).
    let policy = crate::store::ApprovalPolicy {
        require: vec!["routing:*".into()],
        ..Default::default()
    };
    store.set_approval_policy(tenant, &policy).await?;
    say("policy    every routing action waits for a person's approval");

    let topology = Topology::from_settings(&settings.amqp, &catalog);
    let watcher = broker::connect(
        &settings.amqp,
        &broker::connection_name(&topology.prefix, "demo"),
    )
    .await?;
    let mut tap = Tap::open(&watcher, &topology).await?;
    let shutdown = CancellationToken::new();
    let worker = crate::app::worker(&settings, store.clone(), catalog.clone());
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    say(&format!(
        "worker    consuming {} (concurrency {}) and {}",
        topology.triggers_queue, settings.amqp.concurrency, topology.results_queue
    ));
    let executor = StandIn::start(&settings.amqp, &topology, crate::clock::Clock::system()).await?;
    say(&format!(
        "executor  a STAND-IN executor ({}), in this process: it applies nothing outside, \
         and reports acknowledged + applied on {}",
        standin::SOURCE,
        topology.results_exchange
    ));

    let client = TriggerClient::connect(&settings.amqp, topology.clone()).await?;
    let message_id = uuid::Uuid::new_v4().to_string();
    let msg = TriggerMessage {
        tenant_id: input.tenant_id.clone(),
        trigger: Trigger {
            kind: TriggerType::Manual,
            source: "demo".into(),
            triggered_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        },
        analysis_window: Some(input.analysis_window.clone()),
    };
    say(&format!(
        "trigger   published to {} with message_id {message_id} (window {} .. {})",
        topology.triggers_exchange,
        msg.analysis_window.as_ref().map_or("", |w| &w.start_date),
        msg.analysis_window.as_ref().map_or("", |w| &w.end_date)
    ));
    let started = Instant::now();
    let reply = client
        .send_and_wait(&msg, &message_id, Duration::from_secs(60))
        .await;
    client.close().await;
    let result = match reply {
        Ok(r) if r.status == "completed" => serde_json::from_value::<KernelOutput>(r.body)
            .map_err(|e| Error::Run(format!("unexpected reply: {e}"))),
        Ok(r) => Err(Error::CycleFailed {
            status: r.status,
            body: r.body,
        }),
        Err(e) => Err(e.into()),
    };
    let outcome = match result {
        Ok(output) => {
            let held: Vec<crate::store::PendingApproval> = store
                .pending_approvals(Some(tenant))
                .await?
                .into_iter()
                .filter(|p| p.cycle_id.to_string() == output.cycle_id)
                .collect();
            match show(&output, &held, &mut tap, &topology, started, &mut say).await {
                Ok(()) => lifecycle(&store, &output, &held, &mut say).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };

    let stopped = executor.stop().await;
    shutdown.cancel();
    match worker_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    }
    let _ = watcher.close(200, "demo done".into()).await;
    stopped?;
    outcome
}

/// Waits until the stand-in executor's reports moved every action to `applied`, then prints
/// each action's lifecycle as the database recorded it.
async fn lifecycle(
    store: &Store,
    out: &KernelOutput,
    held: &[crate::store::PendingApproval],
    say: &mut impl FnMut(&str),
) -> Result<(), Error> {
    let is_held = |id: &str| held.iter().any(|p| p.action_id == id);
    let cycle_id = uuid::Uuid::parse_str(&out.cycle_id)
        .map_err(|_| Error::Run(format!("cycle id {} is not a UUID", out.cycle_id)))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut histories = Vec::new();
    loop {
        histories.clear();
        for a in out.actions.iter().filter(|a| !is_held(&a.action_id)) {
            histories.push((a, store.action_reports(cycle_id, &a.action_id).await?));
        }
        let applied = |h: &[crate::store::StoredReport]| {
            h.iter()
                .any(|r| r.status_after == ActionStatus::Applied.as_str())
        };
        if histories.iter().all(|(_, h)| applied(h)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Run(
                "the stand-in executor's reports did not apply every action within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say("");
    say("each action's lifecycle, as the database recorded the executor's reports:");
    for (a, history) in &histories {
        // An executor only gets what the broker accepted: the action was published even when
        // its first report overtook the relay's confirm (status_before still `pending`).
        let mut steps: Vec<&str> = vec![ActionStatus::Published.as_str()];
        for r in history {
            if steps.last() != Some(&r.status_after.as_str()) {
                steps.push(&r.status_after);
            }
        }
        let change = &a.proposed_change;
        say(&format!(
            "  {}. {}: {}   ({} {} -> {})",
            a.priority,
            a.action_id,
            steps.join(" → "),
            change.field,
            change.current_value,
            change.new_value
        ));
    }
    for p in held {
        say(&format!(
            "  {}. {}: pending_approval ({})\n     approve: revenue-os approve {}:{} --by NAME --hash {}",
            p.action.priority,
            p.action_id,
            p.reason.as_deref().unwrap_or("held"),
            p.cycle_id,
            p.action_id,
            p.hash
        ));
    }
    Ok(())
}

/// Prints the decision, then waits for every action and the cycle event on the tap.
async fn show(
    out: &KernelOutput,
    held: &[crate::store::PendingApproval],
    tap: &mut Tap,
    topology: &Topology,
    started: Instant,
    say: &mut impl FnMut(&str),
) -> Result<(), Error> {
    let s = &out.cycle_summary;
    say("");
    say(&format!(
        "cycle {} completed: binding constraint {} on {} (confidence {:.2})",
        out.cycle_id, s.binding_constraint, s.priority_metric, s.confidence
    ));
    say(&format!("  {}", s.diagnosis));
    for dq in out.data_quality_actions.iter().flatten() {
        say(&format!(
            "  data quality [{}] {}: {}",
            dq.issue_type, dq.affected_metric, dq.description
        ));
    }
    say("");
    say("actions as the executors receive them (published with confirms):");
    let expected = out.actions.len() - held.len();
    let mut seen_actions = 0;
    let mut seen_event = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen_actions < expected || !seen_event) && Instant::now() < deadline {
        let Some(m) = tap.next(Duration::from_millis(500)).await? else {
            continue;
        };
        if m.cycle_id.as_deref() != Some(out.cycle_id.as_str()) {
            continue;
        }
        if m.exchange == topology.cycles_exchange {
            seen_event = true;
            continue;
        }
        let Ok(msg) = serde_json::from_slice::<ActionMessage>(&m.body) else {
            continue;
        };
        seen_actions += 1;
        say(&describe(&m.exchange, &m.routing_key, &msg));
    }
    for p in held {
        say(&format!(
            "  {}. {}  HELD for approval, not published: {}",
            p.action.priority,
            p.action_id,
            p.reason.as_deref().unwrap_or("")
        ));
    }
    say("");
    if seen_actions < expected || !seen_event {
        return Err(Error::Run(format!(
            "saw {seen_actions} of {expected} actions{} within 30 s",
            if seen_event {
                ""
            } else {
                " and no cycle event"
            }
        )));
    }
    say(&format!(
        "cycle event on {} (completed.{}); {} actions delivered {} ms after the trigger",
        topology.cycles_exchange,
        out.tenant_id,
        seen_actions,
        started.elapsed().as_millis()
    ));
    Ok(())
}

fn describe(exchange: &str, routing_key: &str, m: &ActionMessage) -> String {
    let a = &m.action;
    let mut s = format!(
        "  {}. {}  [{exchange}, routing key {routing_key}]\n     ",
        a.priority, a.action_id
    );
    if let Some(e) = &a.target_entity {
        let _ = write!(s, "{} {}: ", e.kind, e.id);
    }
    let _ = write!(
        s,
        "{} {} -> {}",
        a.proposed_change.field, a.proposed_change.current_value, a.proposed_change.new_value
    );
    if let Some(x) = a.guardrails.max_additional_spend {
        let _ = write!(s, "; at most {x} more spend");
    }
    if let Some(x) = a.guardrails.max_exposure_percent {
        let _ = write!(s, "; at most {x}% exposed");
    }
    for c in &a.guardrails.abort_conditions {
        let _ = write!(
            s,
            "; abort if {} {} {} for {} days",
            c.metric_id, c.operator, c.threshold, c.consecutive_days
        );
    }
    if let Some(e) = &a.experiment {
        let _ = write!(
            s,
            "\n     experiment {}/{} control/treatment, {} per arm, win if {} reaches {}",
            e.control_group_pct,
            e.treatment_group_pct,
            e.min_sample_size,
            e.success_metric,
            e.success_threshold
        );
    }
    let _ = write!(s, "\n     why: {}", a.notes_for_humans);
    s
}
