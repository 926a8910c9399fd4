//! `/cycles/{id}`: one cycle with its trigger, window, diagnosis, trace and output.

use super::super::operator::{Nav, Visitor};
use super::super::state::App;
use super::PageError;
use super::{Page, ok, time, uuid};
use askama::Template;
use axum::extract::{Path, State};
use uuid::Uuid;

#[derive(Template)]
#[template(path = "cycle.html")]
struct CyclePage {
    nav: Nav,
    id: Uuid,
    tenant_id: Uuid,
    status: String,
    error_code: String,
    error_message: Option<String>,
    executed_at: String,
    duration_ms: i32,
    trigger: String,
    message_id: String,
    window: String,
    constraint: String,
    metric: String,
    confidence: String,
    diagnosis: Option<String>,
    trace: Option<String>,
    output: Option<String>,
    error: Option<String>,
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub async fn get(State(shared): App, who: Visitor, Path(id): Path<String>) -> Page {
    let id = uuid(&id, "cycle")?;
    let Some(c) = shared.console.store.cycle_detail(id).await? else {
        return Err(PageError::not_found(
            "No such cycle",
            format!("There is no cycle {id}."),
        ));
    };
    let b = &c.brief;
    ok(&CyclePage {
        nav: who.nav,
        id,
        tenant_id: b.tenant_id,
        status: b.status.clone(),
        error_code: match b.skip_reason {
            Some(_) => crate::console::view::outcome(b),
            None => b.error_code.clone().unwrap_or_default(),
        },
        error_message: b.error_message.clone(),
        executed_at: time(b.executed_at),
        duration_ms: c.duration_ms,
        trigger: format!("{} from {}", c.trigger_type, c.trigger_source),
        message_id: c.message_id.clone(),
        window: format!("{} .. {}", c.window_start, c.window_end),
        constraint: b.binding_constraint.clone().unwrap_or_else(|| "-".into()),
        metric: b.priority_metric.clone().unwrap_or_else(|| "-".into()),
        confidence: b
            .confidence
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "-".into()),
        diagnosis: b.diagnosis.clone(),
        trace: c.trace.clone(),
        output: c.output.as_ref().map(pretty),
        error: c.error.as_ref().map(pretty),
    })
}
