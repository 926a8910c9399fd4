//! `/tenants/{id}`: a tenant's latest diagnosis, its constraint timeline, the priority
//! metric's chart, what waits for a person, every action with its history, the watchdog's
//! evaluations, measured outcomes and campaigns.

use super::super::chart::{Chart, compact};
use super::super::operator::{Nav, Visitor};
use super::super::state::App;
use super::super::view::{self, TenantView};
use super::PageError;
use super::approvals::{PendingRow, pending};
use super::{Page, ok, short, time, uuid};
use askama::Template;
use axum::extract::{Path, State};
use uuid::Uuid;

struct LatestBlock {
    cycle_id: Uuid,
    cycle_short: String,
    executed_at: String,
    constraint: String,
    metric: String,
    confidence: String,
    diagnosis: String,
}

struct TimelineCell {
    cycle_id: Uuid,
    class: String,
    title: String,
    date: String,
}

/// One line of an action's history: a person's decision or an executor's report.
struct ReportRow {
    when: String,
    kind: String,
    rest: String,
    /// A report that moved nothing (`late`, `invalid_transition`).
    flag: Option<String>,
}

struct ActionRow {
    priority: i16,
    action_id: String,
    status: String,
    outcome: Option<String>,
    change: String,
    conditions: Vec<String>,
    notes: String,
    reports: Vec<ReportRow>,
}

struct EvalRow {
    as_of: String,
    verdict: String,
    mode: String,
    action_id: String,
    sentence: String,
}

struct OutcomeRow {
    when: String,
    action_id: String,
    metric: String,
    baseline: String,
    observed: String,
    delta: String,
    confidence: String,
    outcome: String,
    source: String,
}

struct CampaignRow {
    id: String,
    name: String,
    status: String,
    budget: String,
    spent: String,
}

/// A detection of the last `DEVIATION_DAYS`.
struct DeviationLine {
    day: String,
    metric: String,
    observed: String,
    expected: String,
    band: String,
    change: String,
    how: String,
    /// `harmful` or `helpful`.
    kind: &'static str,
    triggered: bool,
}

/// A recent load that carried rows of this tenant.
struct LoadLine {
    when: String,
    kind: String,
    source: String,
    load_id: String,
    counts: String,
    rejected: i64,
}

struct RejectLine {
    load_id: String,
    line: i64,
    problem: String,
    raw: String,
}

const DEVIATION_DAYS: i64 = 90;
const LOADS_SHOWN: i64 = 10;

#[derive(Template)]
#[template(path = "tenant.html")]
struct TenantPage {
    nav: Nav,
    id: Uuid,
    latest: Option<LatestBlock>,
    timeline: Vec<TimelineCell>,
    metric: String,
    chart: Option<Chart>,
    pending: Vec<PendingRow>,
    csrf: Option<String>,
    actions: Vec<ActionRow>,
    evaluations: Vec<EvalRow>,
    outcomes: Vec<OutcomeRow>,
    campaigns: Vec<CampaignRow>,
    /// Which categories wait for a person, and which go out on their own.
    policy: Vec<String>,
    /// Who set the policy, and when.
    policy_set: Option<String>,
    deviations: Vec<DeviationLine>,
    loads: Vec<LoadLine>,
    rejects: Vec<RejectLine>,
}

fn timeline(v: &TenantView) -> Vec<TimelineCell> {
    v.cycles
        .iter()
        .rev()
        .map(|c| {
            let (class, what) = match (c.status.as_str(), &c.binding_constraint) {
                ("completed", Some(b)) => (
                    format!("c-{b}"),
                    format!(
                        "{b} on {} ({:.2})",
                        c.priority_metric.as_deref().unwrap_or("-"),
                        c.confidence.unwrap_or(0.0)
                    ),
                ),
                (s, _) => (
                    format!("c-{s}"),
                    format!("{s}: {}", crate::console::view::outcome(c)),
                ),
            };
            TimelineCell {
                cycle_id: c.cycle_id,
                title: format!("{} · {what}", time(c.executed_at)),
                date: c.executed_at.format("%b %d %H:%M").to_string(),
                class,
            }
        })
        .collect()
}

pub async fn get(State(shared): App, who: Visitor, Path(id): Path<String>) -> Page {
    let id = uuid(&id, "tenant")?;
    let console = &shared.console;
    let Some(v) = view::tenant(&console.store, &console.catalog, id).await? else {
        return Err(PageError::not_found(
            "No such tenant",
            format!("There is no tenant {id}."),
        ));
    };
    let metric = v.priority_metric.clone().unwrap_or_default();
    let rules: Vec<(String, f64)> = v
        .thresholds
        .iter()
        .map(|t| (t.label(), t.condition.threshold))
        .collect();
    let since = chrono::Utc::now().date_naive() - chrono::Duration::days(DEVIATION_DAYS);
    let found = console.store.deviations(Some(id), Some(since)).await?;
    let marks: Vec<_> = found
        .iter()
        .filter(|d| d.row.metric_id == metric)
        .map(|d| {
            let r = &d.row;
            (r.day, r.observed, deviation_title(r), r.harmful)
        })
        .collect();
    let chart = Chart::daily(
        &v.series,
        v.target.as_ref().map(|(_, value)| ("target", *value)),
        &rules,
    )
    .map(|c| c.with_marks(&marks));
    let (loads, rejects) = console.store.tenant_loads(id, LOADS_SHOWN).await?;
    let (policy, policy_set) = policy_lines(&shared, id).await?;
    let page = TenantPage {
        deviations: found
            .iter()
            .map(|d| {
                let r = &d.row;
                DeviationLine {
                    day: r.day.to_string(),
                    metric: r.metric_id.clone(),
                    observed: compact(r.observed),
                    expected: compact(r.expected),
                    band: format!("{} to {}", compact(r.band_lower), compact(r.band_upper)),
                    change: change_pct(r.observed, r.expected),
                    how: format!("{} over {} days, k {}", r.method, r.days_used, r.k),
                    kind: if r.harmful { "harmful" } else { "helpful" },
                    triggered: d.trigger_message_id.is_some(),
                }
            })
            .collect(),
        loads: loads
            .iter()
            .map(|l| LoadLine {
                when: l.committed_at.map(time).unwrap_or_default(),
                kind: format!("{}{}", l.kind, if l.snapshot { " (snapshot)" } else { "" }),
                source: l.source.clone(),
                load_id: l.load_id.chars().take(12).collect(),
                counts: format!(
                    "{} rows: {} inserted, {} updated, {} unchanged, {} removed",
                    l.rows, l.inserted, l.updated, l.unchanged, l.removed
                ),
                rejected: l.rejected,
            })
            .collect(),
        rejects: rejects
            .into_iter()
            .map(|r| RejectLine {
                load_id: r.load_id.chars().take(12).collect(),
                line: r.line,
                problem: r.problem,
                raw: r.raw,
            })
            .collect(),
        policy,
        policy_set,
        nav: who.nav.clone(),
        id,
        latest: v.latest.as_ref().map(|l| LatestBlock {
            cycle_id: l.cycle_id,
            cycle_short: short(&l.cycle_id),
            executed_at: time(l.executed_at),
            constraint: l.binding_constraint.clone().unwrap_or_default(),
            metric: l.priority_metric.clone().unwrap_or_default(),
            confidence: l.confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
            diagnosis: l.diagnosis.clone().unwrap_or_default(),
        }),
        timeline: timeline(&v),
        metric,
        chart,
        pending: pending(&shared, Some(id)).await?,
        csrf: who.csrf(),
        actions: v
            .actions
            .iter()
            .map(|h| ActionRow {
                priority: h.action.priority,
                action_id: h.action.action_id.clone(),
                status: h.action.status.clone(),
                outcome: h.action.outcome.clone(),
                change: view::change(&h.action.action),
                conditions: h
                    .action
                    .action
                    .guardrails
                    .abort_conditions
                    .iter()
                    .map(view::condition)
                    .collect(),
                notes: match &h.action.approval_reason {
                    Some(why) => format!(
                        "Held for approval: {why}. {}",
                        h.action.action.notes_for_humans
                    ),
                    None => h.action.action.notes_for_humans.clone(),
                },
                reports: h
                    .decisions
                    .iter()
                    .map(|d| ReportRow {
                        when: time(d.decided_at),
                        kind: d.decision.clone(),
                        rest: format!(
                            "by {}{}",
                            d.decided_by,
                            d.reason
                                .as_deref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                        flag: None,
                    })
                    .chain(h.reports.iter().map(|r| ReportRow {
                        when: time(r.received_at),
                        kind: format!("{}{}", r.kind, if r.on_revert { " (revert)" } else { "" }),
                        rest: format!(
                            "from {}: {} → {}",
                            r.source, r.status_before, r.status_after
                        ),
                        flag: (r.result != "applied").then(|| r.result.clone()),
                    }))
                    .collect(),
            })
            .collect(),
        evaluations: v
            .evaluations
            .iter()
            .map(|e| EvalRow {
                as_of: e.as_of.to_string(),
                verdict: e.verdict.clone(),
                mode: e.mode.clone(),
                action_id: e.action_id.clone(),
                sentence: e.sentence.clone(),
            })
            .collect(),
        outcomes: v
            .outcomes
            .iter()
            .map(|o| OutcomeRow {
                when: time(o.recorded_at),
                action_id: o.action_id.clone(),
                metric: o.target_metric.clone(),
                baseline: compact(o.baseline_value),
                observed: compact(o.observed_value),
                delta: compact(o.delta),
                confidence: format!("{:.2}", o.confidence),
                outcome: o.outcome.clone(),
                source: o.source.clone().unwrap_or_else(|| "import".into()),
            })
            .collect(),
        campaigns: v
            .campaigns
            .iter()
            .map(|c| CampaignRow {
                id: c.id.clone(),
                name: c.name.clone(),
                status: c.status.clone(),
                budget: compact(c.budget_total),
                spent: compact(c.budget_spent),
            })
            .collect(),
    };
    ok(&page)
}

fn change_pct(observed: f64, expected: f64) -> String {
    match expected.abs() > f64::EPSILON {
        true => format!("{:+.0}%", (observed / expected - 1.0) * 100.0),
        false => String::new(),
    }
}

/// A chart mark's tooltip: the numbers that decided the detection.
fn deviation_title(r: &crate::store::DeviationRow) -> String {
    format!(
        "{} on {}: {} against {} expected ({}), band {} to {} ({} over {} days, k {})",
        r.metric_id,
        r.day,
        compact(r.observed),
        compact(r.expected),
        change_pct(r.observed, r.expected),
        compact(r.band_lower),
        compact(r.band_upper),
        r.method,
        r.days_used,
        r.k
    )
}

/// The tenant's approval policy as sentences, and who set it when.
async fn policy_lines(
    shared: &crate::console::state::Shared,
    id: Uuid,
) -> Result<(Vec<String>, Option<String>), PageError> {
    let store = &shared.console.store;
    let Some(p) = store.approval_policy(id).await? else {
        return Ok((
            vec!["Every action goes out automatically: no approval policy is set.".into()],
            None,
        ));
    };
    let mut lines = Vec::new();
    let list = |v: &[String]| v.join(", ");
    if !p.require.is_empty() {
        lines.push(format!("Held for one person: {}.", list(&p.require)));
    }
    if !p.two_approvers.is_empty() {
        lines.push(format!(
            "Held for two distinct approvers: {}.",
            list(&p.two_approvers)
        ));
    }
    if let Some(m) = p.max_added_spend {
        lines.push(format!("Held when an action may add more than {m} spend."));
    }
    if let Some(m) = p.max_budget_step_pct {
        lines.push(format!("Held when a budget moves by more than {m}%."));
    }
    if let Some(d) = p.first_days {
        lines.push(format!(
            "Everything held during the tenant's first {d} days."
        ));
    }
    lines.push("Everything else goes out automatically.".into());
    let set = store.approval_policy_set_by(id).await?.map(|s| {
        format!(
            "Set by {} at {}.",
            s.by.as_deref()
                .unwrap_or("the command line (revenue-os tenant policy)"),
            time(s.at)
        )
    });
    Ok((lines, set))
}
