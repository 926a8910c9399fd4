//! `/approvals`: what waits for a person, and the approve/reject forms' handlers. The
//! decision itself is the `Approver`'s (`app`); this page only reports its outcome.

use super::super::operator::{CsrfForm, Nav, Signed, Visitor};
use super::super::routes::{App, Shared};
use super::super::view;
use super::error::PageError;
use super::{Page, render, short, time, uuid};
use crate::store::{ApprovalOutcome, ApprovalRequest};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use uuid::Uuid;

/// A pending action as the queue shows it, with the hash its form carries.
pub struct PendingRow {
    pub tenant_id: Uuid,
    pub tenant_short: String,
    pub cycle_id: Uuid,
    pub cycle_short: String,
    pub action_id: String,
    pub change: String,
    pub notes: String,
    pub hash: String,
    pub created: String,
}

/// The held actions, of one tenant or all.
pub async fn pending(shared: &Shared, tenant: Option<Uuid>) -> Result<Vec<PendingRow>, PageError> {
    let rows = shared.console.store.pending_approvals(tenant).await?;
    Ok(rows
        .into_iter()
        .map(|p| PendingRow {
            tenant_short: short(&p.tenant_id),
            tenant_id: p.tenant_id,
            cycle_short: short(&p.cycle_id),
            cycle_id: p.cycle_id,
            change: view::change(&p.action),
            notes: match &p.reason {
                Some(why) => format!("Held: {why}. {}", p.action.notes_for_humans),
                None => p.action.notes_for_humans.clone(),
            },
            action_id: p.action_id,
            hash: p.hash,
            created: time(p.created_at),
        })
        .collect())
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    pending: Vec<PendingRow>,
    csrf: Option<String>,
    /// (banner class, text) after a decision.
    message: Option<(&'static str, String)>,
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
