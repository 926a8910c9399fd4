//! The watchdog keeps each action's promises: it checks the abort conditions day by day as of
//! the tenant's newest metric day, reverts through the outbox when one holds for its
//! consecutive days, escalates when the data to check it is missing, and measures the
//! outcome once the observation window is over (docs/watchdog.md).
//!
//! `evaluate` is the pure judgement, `stats` the t-test; this module turns a verdict into the
//! store's `WatchDecision` and runs sweeps.

pub mod evaluate;
pub mod stats;

use crate::broker::Topology;
use crate::clock::Clock;
use crate::contract::{
    AbortCondition, Action, ActionGuardrails, ActionMessage, ActionResult, ActionStatus,
    ActionType, ExpectedImpact, ImpactDirection, Operator, Outcome, ProposedChange, Version,
    report::revert_message_id,
};
use crate::store::{
    Evaluation, OutboxMessage, Store, StoreError, WatchDecision, WatchFacts, WatchNeeds,
    WatchPolicy, WatchVerdict, Watched,
};
use crate::telemetry::metrics;
use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use evaluate::{Facts, Verdict};
use serde_json::{Value, json};
use uuid::Uuid;

/// Confidence given to a failure the watchdog saw directly (a condition held for its
/// consecutive days): a fact, not an estimate.
pub const ABORT_CONFIDENCE: f64 = 0.95;
/// A sweep evaluates at most this many actions; the next sweep takes the rest.
pub const MAX_PER_SWEEP: usize = 10_000;

/// The watchdog's rules, with the names it publishes under and the clock it reads.
#[derive(Debug, Clone)]
pub struct Watchdog {
    pub topology: Topology,
    pub clock: Clock,
}

/// The first day fully after a change that took effect at `since`.
fn first_day(since: DateTime<Utc>) -> NaiveDate {
    let day = since.date_naive();
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}

impl WatchPolicy for Watchdog {
    fn unwatched_types(&self) -> Vec<&'static str> {
        ActionType::ALL
            .iter()
            .copied()
            .filter(|k| !evaluate::watched(*k))
            .map(ActionType::as_str)
            .collect()
    }

    fn needs(&self, action: &Action, since: DateTime<Utc>) -> WatchNeeds {
        WatchNeeds {
            metrics: evaluate::needed_metrics(action),
            from: evaluate::history_from(action, first_day(since)),
        }
    }

    fn decide(&self, f: &WatchFacts) -> WatchDecision {
        let first_day = first_day(f.since);
        let restore = f
            .applied_inverse
            .as_ref()
            .and_then(|i| i.get("value"))
            .or(f.applied_before.as_ref());
        let facts = Facts {
            action: &f.action,
            first_day,
            as_of: f.as_of,
            metrics: &f.metrics,
            applied_after: f.applied_after.as_ref(),
            restore,
            already_escalated: f.escalated,
        };
        let verdict = evaluate::judge(&facts);
        let sentence = evaluate::sentence(&f.action, &verdict);
        let numbers = serde_json::to_value(&verdict).unwrap_or(Value::Null);
        let evaluation = |v: WatchVerdict, outcome: Option<Outcome>| Evaluation {
            verdict: v,
            outcome,
            sentence: sentence.clone(),
            numbers: numbers.clone(),
        };
        let keep = |e| WatchDecision {
            evaluation: e,
            status: None,
            escalate: false,
            outbox: vec![],
            result: None,
        };
        match &verdict {
            Verdict::Watching { .. } => keep(evaluation(WatchVerdict::Watching, None)),
            Verdict::Abort { .. } if f.shadow => keep(evaluation(WatchVerdict::WouldRevert, None)),
            Verdict::Abort {
                checks,
                tripped,
                current,
                restore,
            } => {
                let c = &checks[*tripped];
                let failing: Vec<f64> = c.tripping_days().iter().filter_map(|d| d.value).collect();
                let observed = evaluate_mean(&failing).unwrap_or(c.condition.threshold);
                WatchDecision {
                    evaluation: evaluation(WatchVerdict::Abort, None),
                    status: Some(ActionStatus::Reverting),
                    escalate: false,
                    outbox: vec![self.revert(
                        f,
                        &c.condition,
                        current,
                        restore,
                        &sentence,
                        observed,
                    )],
                    // The kernel learns from it: a reverted change is not proposed again soon.
                    result: Some(ActionResult {
                        action_id: f.action_id.clone(),
                        target_metric: c.condition.metric_id.clone(),
                        baseline_value: c.condition.threshold,
                        observed_value: observed,
                        delta: observed - c.condition.threshold,
                        confidence: ABORT_CONFIDENCE,
                        outcome: Outcome::Failed,
                    }),
                }
            }
            Verdict::Escalate { metric, .. } => WatchDecision {
                evaluation: evaluation(WatchVerdict::Escalate, None),
                status: None,
                escalate: true,
                outbox: if f.shadow {
                    vec![]
                } else {
                    vec![self.escalation(f, metric, &sentence)]
                },
                result: None,
            },
            Verdict::Measured { measured: m, .. } => WatchDecision {
                evaluation: evaluation(WatchVerdict::Measured, Some(m.outcome)),
                status: Some(ActionStatus::Concluded),
                escalate: false,
                outbox: vec![],
                result: Some(ActionResult {
                    action_id: f.action_id.clone(),
                    target_metric: f.action.expected_impact.metric_id.clone(),
                    baseline_value: m.welch.mean_before,
                    observed_value: m.welch.mean_after,
                    delta: m.welch.diff,
                    confidence: m.confidence,
                    outcome: m.outcome,
                }),
            },
            Verdict::Unmeasurable { .. } => WatchDecision {
                evaluation: evaluation(WatchVerdict::Unmeasurable, None),
                status: Some(ActionStatus::Concluded),
                escalate: false,
                outbox: vec![],
                result: None,
            },
        }
    }
}

fn evaluate_mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| stats::mean(x))
}

fn headers(pairs: &[(&str, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect(),
    )
}

impl Watchdog {
    /// The revert: on the action's subsystem exchange, type `revert`, the same field (or the
    /// executor's inverse field), from what was applied back to the exact prior value.
    fn revert(
        &self,
        f: &WatchFacts,
        condition: &AbortCondition,
        current: &Value,
        restore: &Value,
        sentence: &str,
        observed: f64,
    ) -> OutboxMessage {
        let a = &f.action;
        let field = f
            .applied_inverse
            .as_ref()
            .and_then(|i| i.get("field"))
            .and_then(Value::as_str)
            .unwrap_or(&a.proposed_change.field)
            .to_owned();
        let entity = a.target_entity.as_ref().map_or("none", |e| e.id.as_str());
        let direction = match condition.operator {
            Operator::Gt | Operator::Ge => ImpactDirection::Decrease,
            Operator::Lt | Operator::Le => ImpactDirection::Increase,
        };
        let magnitude = if condition.threshold != 0.0 {
            ((observed - condition.threshold) / condition.threshold * 100.0).abs()
        } else {
            0.0
        };
        let action = Action {
            action_id: format!("{}.revert.{entity}.{field}", a.owner_subsystem),
            priority: 1,
            owner_subsystem: a.owner_subsystem,
            kind: ActionType::Revert,
            target_metric: condition.metric_id.clone(),
            target_entity: a.target_entity.clone(),
            proposed_change: ProposedChange {
                field,
                current_value: current.clone(),
                new_value: restore.clone(),
            },
            guardrails: ActionGuardrails {
                max_additional_spend: None,
                max_exposure_percent: None,
                abort_conditions: vec![],
            },
            experiment: None,
            observation_window_days: a.observation_window_days,
            expected_impact: ExpectedImpact {
                metric_id: condition.metric_id.clone(),
                direction,
                magnitude_pct: (magnitude * 100.0).round() / 100.0,
                confidence: 0.5,
            },
            notes_for_humans: format!("Watchdog revert of {}: {sentence}", f.action_id),
        };
        let tenant = f.tenant_id.to_string();
        let cycle = f.cycle_id.to_string();
        let body = ActionMessage {
            version: Version::V1,
            tenant_id: tenant.clone(),
            cycle_id: cycle.clone(),
            executed_at: f.now.to_rfc3339_opts(SecondsFormat::Secs, true),
            action,
        };
        OutboxMessage {
            exchange: self.topology.action_exchange(a.owner_subsystem),
            routing_key: format!("revert.{tenant}"),
            message_id: revert_message_id(f.cycle_id, &f.action_id),
            headers: headers(&[
                ("tenant_id", tenant),
                ("cycle_id", cycle),
                ("action_id", f.action_id.clone()),
                ("revert_of", f.action_id.clone()),
                ("version", Version::V1.as_str().to_owned()),
            ]),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            // Marks it an action message: mandatory, kept pending until an executor queue takes it.
            action_id: Some(f.action_id.clone()),
            stored: crate::store::StoredBody::Verbatim,
        }
    }

    /// `watchdog.escalated.<tenant_id>` on the cycles exchange: a person should look.
    fn escalation(&self, f: &WatchFacts, metric: &str, sentence: &str) -> OutboxMessage {
        let tenant = f.tenant_id.to_string();
        let body = json!({
            "tenant_id": tenant, "cycle_id": f.cycle_id.to_string(), "action_id": f.action_id,
            "metric_id": metric, "as_of": f.as_of.to_string(), "sentence": sentence,
        });
        OutboxMessage {
            exchange: self.topology.cycles_exchange.clone(),
            routing_key: format!("watchdog.escalated.{tenant}"),
            message_id: format!("{}:escalated:{}", f.cycle_id, f.action_id),
            headers: headers(&[
                ("tenant_id", tenant),
                ("cycle_id", f.cycle_id.to_string()),
                ("action_id", f.action_id.clone()),
            ]),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            action_id: None,
            stored: crate::store::StoredBody::Verbatim,
        }
    }
}

/// Tenants per watchdog transaction: their due actions are claimed, read, judged and
/// recorded together (`Store::watch_batch`).
pub const TENANTS_PER_BATCH: usize = 100;

/// Evaluates the due actions of `tenant` (or of every tenant with due actions), batch by
/// batch, up to `MAX_PER_SWEEP` evaluations; what each did, for a caller that shows them.
pub async fn sweep(
    store: &Store,
    watchdog: &Watchdog,
    tenant: Option<Uuid>,
) -> Result<Vec<Watched>, StoreError> {
    let tenants = match tenant {
        Some(t) => vec![t],
        None => store.watch_due_tenants().await?,
    };
    let mut out = Vec::new();
    for chunk in tenants.chunks(TENANTS_PER_BATCH) {
        if out.len() >= MAX_PER_SWEEP {
            break;
        }
        let done = store
            .watch_batch(chunk, watchdog, watchdog.clock.now())
            .await?;
        done.iter().for_each(count);
        out.extend(done);
    }
    Ok(out)
}

/// What a sweep over many tenants did, without holding each evaluation: the count, and the
/// outbox rows (reverts, escalations) to relay.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub evaluated: usize,
    pub outbox: Vec<crate::store::OutboxRow>,
}

/// Watchdog batches of one sweep in flight at once. One batch leaves the database waiting on
/// the worker's judging and the worker on the database (a third of two cores busy at 10,000
/// tenants); two keep both busy. Their tenants are disjoint, so they never wait on each other.
pub const BATCHES_IN_FLIGHT: usize = 2;

/// Evaluates the due actions of `tenants`, `TENANTS_PER_BATCH` per transaction and
/// `BATCHES_IN_FLIGHT` transactions at once, each batch within `deadline`. Memory stays a few
/// batches' worth however many tenants there are.
pub async fn sweep_tenants(
    store: &Store,
    watchdog: &Watchdog,
    tenants: &[Uuid],
    deadline: std::time::Duration,
) -> Result<SweepReport, StoreError> {
    use futures_util::StreamExt;
    let mut report = SweepReport::default();
    let mut chunks = tenants.chunks(TENANTS_PER_BATCH);
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    loop {
        while in_flight.len() < BATCHES_IN_FLIGHT {
            let Some(chunk) = chunks.next() else { break };
            in_flight.push(watch_batch(store, watchdog, chunk, deadline));
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        let done = done?;
        report.evaluated += done.len();
        for w in done {
            count(&w);
            report.outbox.extend(w.outbox);
        }
    }
    Ok(report)
}

async fn watch_batch(
    store: &Store,
    watchdog: &Watchdog,
    chunk: &[Uuid],
    deadline: std::time::Duration,
) -> Result<Vec<Watched>, StoreError> {
    let batch = store.watch_batch(chunk, watchdog, watchdog.clock.now());
    crate::store::bounded(deadline, batch).await
}

fn count(w: &Watched) {
    let e = &w.decision.evaluation;
    metrics::watchdog_evaluation(e.verdict.as_str());
    match e.verdict {
        WatchVerdict::WouldRevert => metrics::would_revert(),
        WatchVerdict::Abort => {
            for m in &w.outbox {
                if let Some(s) = m.message.exchange.rsplit('.').next() {
                    metrics::revert(s.to_owned());
                }
            }
        }
        _ => {}
    }
    if let Some(o) = e.outcome {
        metrics::outcome(o.as_str());
    }
    // A plain "still watching" is the common case (every watched action, every morning): at
    // debug, so that 100,000 tenants' mornings do not log half a million lines; the
    // evaluation itself is stored either way.
    if e.verdict == WatchVerdict::Watching {
        tracing::debug!(
            tenant_id = %w.tenant_id, cycle_id = %w.cycle_id, action_id = %w.action_id,
            as_of = %w.as_of, verdict = e.verdict.as_str(), "{}", e.sentence
        );
    } else {
        tracing::info!(
            tenant_id = %w.tenant_id, cycle_id = %w.cycle_id, action_id = %w.action_id,
            as_of = %w.as_of, verdict = e.verdict.as_str(), "{}", e.sentence
        );
    }
}

/// An evaluation for a terminal: its sentence, then each condition's days and the outcome's
/// numbers, from the stored `numbers`.
pub fn explain(head: &str, sentence: &str, numbers: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{head}\n  {sentence}\n");
    for check in numbers["checks"].as_array().into_iter().flatten() {
        let c = &check["condition"];
        let _ = write!(
            out,
            "  abort if {} {} {} for {} days:",
            c["metric_id"].as_str().unwrap_or("?"),
            c["operator"].as_str().unwrap_or("?"),
            c["threshold"],
            c["consecutive_days"]
        );
        for d in check["days"].as_array().into_iter().flatten() {
            let _ = write!(
                out,
                " {}={} ({})",
                d["date"].as_str().unwrap_or("?"),
                d["value"],
                d["measurement"].as_str().unwrap_or("?")
            );
        }
        out.push('\n');
    }
    if let Some(m) = numbers.get("measured") {
        let w = &m["welch"];
        let _ = writeln!(
            out,
            "  outcome {}: mean before {} (n {}), after {} (n {}); Welch diff {}, se {}, df {}; \
             rho {}, inflated se {}; 95% CI [{}, {}]; change {}%; confidence {}",
            m["outcome"].as_str().unwrap_or("?"),
            w["mean_before"],
            m["before"].as_array().map_or(0, Vec::len),
            w["mean_after"],
            m["after"].as_array().map_or(0, Vec::len),
            w["diff"],
            w["se"],
            w["df"],
            m["rho"],
            m["se_inflated"],
            m["ci_low"],
            m["ci_high"],
            m["change_pct"],
            m["confidence"]
        );
    }
    if let Some(d) = numbers.get("detectable_pct") {
        let _ = writeln!(
            out,
            "  expected {}% vs detectable {}%",
            numbers["expected_pct"], d
        );
    }
    out
}
