//! `/approvals`: what waits for a person, and the approve/reject forms' handlers. The
//! decision itself is the `Approver`'s (`app`); this page only reports its outcome.

use super::super::operator::{CsrfForm, Nav, Signed, Visitor};
use super::super::state::{App, Shared};
use super::super::view;
use super::PageError;
use super::{Page, render, short, time, uuid};
use crate::approvals::{approvers_needed, glance, roles};
use crate::store::{ApprovalOutcome, ApprovalRequest, GlanceFacts, OperatorRole};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use uuid::Uuid;

/// A pending action as the queue shows it, with the hash its form carries and what a
/// person needs to decide at a glance.
pub struct PendingRow {
    pub tenant_id: Uuid,
    pub tenant_short: String,
    pub cycle_id: Uuid,
    pub cycle_short: String,
    pub action_id: String,
    pub notes: String,
    pub hash: String,
    pub created: String,
    pub glance: GlanceRow,
    /// "1 of 2 approvals (ana)" under a two-approver policy.
    pub approvals: Option<String>,
    /// (exchange, routing key, message id, body) published on approval.
    pub release: Option<(String, String, String, String)>,
    pub evidence: Vec<String>,
}

pub struct GlanceRow {
    pub field: String,
    pub current: String,
    pub current_from: String,
    pub proposed: String,
    pub change: String,
    pub headroom: String,
    pub conditions: Vec<String>,
}

fn money(v: f64) -> String {
    format!("{v:+.2}")
}

fn glance_row(g: &glance::Glance) -> GlanceRow {
    let mut change = g
        .change_pct
        .map(|p| format!("{p:+.1}%"))
        .unwrap_or_else(|| "-".into());
    if let Some(m) = g.money {
        change.push_str(&format!(" ({} {}/day)", money(m), g.field));
    }
    let headroom = match (g.headroom_before, g.headroom_after) {
        (Some(b), Some(a)) => format!(
            "{b:.2}/day before → {a:.2}/day after (estimated spend {:.2}/day)",
            g.daily_spend
        ),
        _ => format!(
            "no max_daily_spend cap (estimated spend {:.2}/day)",
            g.daily_spend
        ),
    };
    GlanceRow {
        field: g.field.clone(),
        current: g.current.to_string(),
        current_from: g.current_from.clone(),
        proposed: g.proposed.to_string(),
        change,
        headroom,
        conditions: g
            .conditions
            .iter()
            .map(|c| {
                let rule = view::condition(&c.condition);
                match (c.latest, c.distance) {
                    (Some((day, v)), Some(d)) => format!(
                        "{rule}: latest {v:.2} on {day}, {} {:.2} from the threshold",
                        if d >= 0.0 {
                            "safe by"
                        } else {
                            "already past it by"
                        },
                        d.abs()
                    ),
                    _ => format!("{rule}: no value yet"),
                }
            })
            .collect(),
    }
}

/// The held actions, of one tenant or all, each with its glance.
pub async fn pending(shared: &Shared, tenant: Option<Uuid>) -> Result<Vec<PendingRow>, PageError> {
    let rows = shared.console.store.pending_approvals(tenant).await?;
    let today = Utc::now().date_naive();
    let mut facts: BTreeMap<Uuid, GlanceFacts> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    let metrics_of = |t: Uuid| -> Vec<String> {
        rows.iter()
            .filter(|q| q.tenant_id == t)
            .flat_map(|q| q.action.guardrails.abort_conditions.iter())
            .map(|c| c.metric_id.clone())
            .collect()
    };
    for p in &rows {
        let f = match facts.entry(p.tenant_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let metrics = metrics_of(p.tenant_id);
                e.insert(
                    shared
                        .console
                        .store
                        .glance_facts(p.tenant_id, &metrics)
                        .await?,
                )
            }
        };
        let g = glance::glance(&p.action, f, today);
        let policy = shared.console.store.approval_policy(p.tenant_id).await?;
        let needed = approvers_needed(policy.as_ref(), &p.action);
        let release = shared
            .console
            .approver
            .as_ref()
            .and_then(|a| a.release_preview(p.tenant_id, p.cycle_id, &p.action));
        out.push(PendingRow {
            tenant_short: short(&p.tenant_id),
            tenant_id: p.tenant_id,
            cycle_short: short(&p.cycle_id),
            cycle_id: p.cycle_id,
            notes: match &p.reason {
                Some(why) => format!("Held: {why}. {}", p.action.notes_for_humans),
                None => p.action.notes_for_humans.clone(),
            },
            glance: glance_row(&g),
            approvals: (needed > 1).then(|| {
                format!(
                    "{} of {needed} approvals{}",
                    p.approved_by.len(),
                    if p.approved_by.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", p.approved_by.join(", "))
                    }
                )
            }),
            release,
            evidence: vec![
                format!(
                    "expects {} {} by {:.1}% (confidence {:.2}) over {} days",
                    p.action.expected_impact.metric_id,
                    p.action.expected_impact.direction.as_str(),
                    p.action.expected_impact.magnitude_pct,
                    p.action.expected_impact.confidence,
                    p.action.observation_window_days
                ),
                p.action.notes_for_humans.clone(),
            ],
            action_id: p.action_id.clone(),
            hash: p.hash.clone(),
            created: time(p.created_at),
        });
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    pending: Vec<PendingRow>,
    csrf: Option<String>,
    /// (banner class, text) after a decision.
    message: Option<(&'static str, String)>,
    /// Per item, after a bulk decision.
    results: Vec<BulkResult>,
}

/// One item of a bulk decision: what was done, or why it was refused.
pub struct BulkResult {
    action_id: String,
    /// `approved`, `rejected` or `refused` (nothing done, `text` says why).
    class: &'static str,
    text: String,
}

async fn page(
    shared: &Shared,
    nav: Nav,
    csrf: Option<String>,
    status: StatusCode,
    message: Option<(&'static str, String)>,
) -> Page {
    let page = ApprovalsPage {
        nav,
        pending: pending(shared, None).await?,
        csrf,
        message,
        results: Vec::new(),
    };
    Ok((status, render(&page)).into_response())
}

pub async fn get(State(shared): App, who: Visitor) -> Page {
    let csrf = who.csrf();
    page(&shared, who.nav, csrf, StatusCode::OK, None).await
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    cycle_id: String,
    action_id: String,
    hash: String,
    csrf: String,
    reason: Option<String>,
}

impl CsrfForm for DecisionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn role() -> (fn(OperatorRole) -> bool, &'static str) {
        (roles::may_decide, "approve or reject actions")
    }
}

pub async fn approve(State(shared): App, signed: Signed<DecisionForm>) -> Page {
    decide(&shared, signed, false).await
}

pub async fn reject(State(shared): App, signed: Signed<DecisionForm>) -> Page {
    decide(&shared, signed, true).await
}

/// The signed-in operator's decision, through the approver.
async fn decide(shared: &Shared, signed: Signed<DecisionForm>, reject: bool) -> Page {
    let Signed { operator, form: f } = signed;
    operator.allowed(roles::may_decide, "approve or reject actions")?;
    let csrf = Some(operator.session.csrf.clone());
    let cycle_id = uuid(&f.cycle_id, "cycle")?;
    let by = operator.name().to_owned();
    let request = if reject {
        let reason = f.reason.unwrap_or_default().trim().to_owned();
        if reason.is_empty() {
            return page(
                shared,
                operator.nav,
                csrf,
                StatusCode::BAD_REQUEST,
                Some(("bad", "A rejection needs a reason.".into())),
            )
            .await;
        }
        ApprovalRequest::Reject {
            by,
            hash: f.hash,
            reason,
        }
    } else {
        ApprovalRequest::Approve { by, hash: f.hash }
    };
    let Some(approver) = shared.console.approver.as_ref() else {
        return Err(PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Approvals unavailable",
            "This console has no approver configured.",
        ));
    };
    let decided = approver
        .decide(cycle_id, f.action_id.clone(), request)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "console: decision failed");
            PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Decision not recorded",
                "The decision could not be recorded; nothing changed. Try again shortly.",
            )
        })?;
    let (status, message) = said(&decided, &f.action_id, cycle_id);
    tracing::info!(operator = %operator.name(), %cycle_id, action_id = %f.action_id,
                   status = status.as_u16(), "console: decision");
    page(shared, operator.nav, csrf, status, Some(message)).await
}

/// An outcome as the banner says it, with the page's status.
fn said(
    decided: &ApprovalOutcome,
    a: &str,
    cycle_id: Uuid,
) -> (StatusCode, (&'static str, String)) {
    match decided {
        ApprovalOutcome::Approved { .. } => (
            StatusCode::OK,
            (
                "ok",
                format!("Approved {a}: it is on its way to the executor."),
            ),
        ),
        ApprovalOutcome::Rejected => (StatusCode::OK, ("ok", format!("Rejected {a}."))),
        ApprovalOutcome::FirstApproval { needed } => (
            StatusCode::OK,
            (
                "ok",
                format!(
                    "Approved {a} (1 of {needed}): it waits for another approver before it is released."
                ),
            ),
        ),
        ApprovalOutcome::SameApprover => (
            StatusCode::CONFLICT,
            (
                "bad",
                format!(
                    "Refused: you already approved {a}; the second approval must be another person's."
                ),
            ),
        ),
        ApprovalOutcome::StaleHash { .. } => (
            StatusCode::CONFLICT,
            (
                "bad",
                format!(
                    "Refused: {a} changed since this page showed it (stale hash). Nothing was decided; review it again."
                ),
            ),
        ),
        ApprovalOutcome::Expired => (
            StatusCode::CONFLICT,
            (
                "bad",
                format!(
                    "Refused: {a} waited too long and has expired; the next cycle decides afresh."
                ),
            ),
        ),
        ApprovalOutcome::Superseded => (
            StatusCode::CONFLICT,
            (
                "bad",
                format!("Refused: a newer cycle of this tenant superseded {a}."),
            ),
        ),
        ApprovalOutcome::NotPending { status } => (
            StatusCode::CONFLICT,
            (
                "bad",
                format!("Refused: {a} is no longer waiting for approval (it is {status})."),
            ),
        ),
        ApprovalOutcome::NotFound => (
            StatusCode::NOT_FOUND,
            ("bad", format!("No pending action {a} in cycle {cycle_id}.")),
        ),
    }
}

/// The bulk form: `item` repeated (`cycle:action:hash`), one `reason`, the `decision`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct BulkForm(Vec<(String, String)>);

impl BulkForm {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl CsrfForm for BulkForm {
    fn csrf(&self) -> &str {
        self.get("csrf").unwrap_or_default()
    }

    fn role() -> (fn(OperatorRole) -> bool, &'static str) {
        (roles::may_decide, "approve or reject actions")
    }
}

/// Several held actions, one decision and reason: each is judged alone (its own hash,
/// expiry and supersession) and the page lists what happened to each.
pub async fn bulk(State(shared): App, signed: Signed<BulkForm>) -> Page {
    let Signed { operator, form } = signed;
    operator.allowed(roles::may_decide, "approve or reject actions")?;
    let csrf = Some(operator.session.csrf.clone());
    let reject = form.get("decision") == Some("reject");
    let reason = form.get("reason").unwrap_or_default().trim().to_owned();
    let items: Vec<&str> = form
        .0
        .iter()
        .filter(|(k, _)| k == "item")
        .map(|(_, v)| v.as_str())
        .collect();
    let refuse = |text: &str| {
        page(
            &shared,
            operator.nav.clone(),
            csrf.clone(),
            StatusCode::BAD_REQUEST,
            Some(("bad", text.to_owned())),
        )
    };
    if items.is_empty() {
        return refuse("Select at least one action.").await;
    }
    if reject && reason.is_empty() {
        return refuse("A rejection needs a reason.").await;
    }
    let Some(approver) = shared.console.approver.as_ref() else {
        return Err(PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Approvals unavailable",
            "This console has no approver configured.",
        ));
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        // `<cycle>:<action>:<hash>`; an action id has no colon, a hash none either.
        let mut parts = item.splitn(3, ':');
        let (Some(cycle), Some(action_id), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            results.push(BulkResult {
                action_id: item.to_owned(),
                class: "refused",
                text: "not an item of this page".into(),
            });
            continue;
        };
        let Ok(cycle_id) = Uuid::parse_str(cycle) else {
            results.push(BulkResult {
                action_id: action_id.to_owned(),
                class: "refused",
                text: format!("'{cycle}' is not a cycle id"),
            });
            continue;
        };
        let by = operator.name().to_owned();
        let hash = hash.to_owned();
        let request = if reject {
            ApprovalRequest::Reject {
                by,
                hash,
                reason: reason.clone(),
            }
        } else {
            ApprovalRequest::Approve { by, hash }
        };
        let (class, text) = match approver
            .decide(cycle_id, action_id.to_owned(), request)
            .await
        {
            Ok(o) => {
                let (status, (_, text)) = said(&o, action_id, cycle_id);
                let class = match o {
                    ApprovalOutcome::Approved { .. } | ApprovalOutcome::FirstApproval { .. } => {
                        "approved"
                    }
                    ApprovalOutcome::Rejected => "rejected",
                    _ if status.is_success() => "approved",
                    _ => "refused",
                };
                (class, text)
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: decision failed");
                (
                    "refused",
                    "not recorded: the database did not answer; try again".into(),
                )
            }
        };
        tracing::info!(operator = %operator.name(), %cycle_id, %action_id, class, "console: bulk decision");
        results.push(BulkResult {
            action_id: action_id.to_owned(),
            class,
            text,
        });
    }
    let done = results.iter().filter(|r| r.class != "refused").count();
    let summary = format!(
        "{done} of {} {}; {} refused.",
        results.len(),
        if reject { "rejected" } else { "approved" },
        results.len() - done
    );
    let page = ApprovalsPage {
        nav: operator.nav,
        pending: pending(&shared, None).await?,
        csrf,
        message: Some((if done == results.len() { "ok" } else { "bad" }, summary)),
        results,
    };
    Ok((StatusCode::OK, render(&page)).into_response())
}
