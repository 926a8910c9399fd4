//! `/audit.csv` (admins): the audit trail as CSV, streamed as the database yields it.

use super::super::audit::{CSV_HEADER, csv_line};
use super::super::operator::Operator;
use super::super::state::App;
use super::Page;
use crate::approvals::roles;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    tenant: Option<uuid::Uuid>,
    since: Option<chrono::NaiveDate>,
}

pub async fn csv(State(shared): App, operator: Operator, Query(q): Query<AuditQuery>) -> Page {
    operator.allowed(roles::may_administer, "export the audit trail")?;
    let since = q
        .since
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let store = shared.console.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.audit(q.tenant, since, tx).await {
            tracing::warn!(error = %e, "console: audit export cut short");
        }
    });
    tracing::info!(operator = %operator.name(), "console: audit export");
    let header_line =
        futures_util::stream::once(async { Ok::<_, std::io::Error>(CSV_HEADER.to_owned()) });
    let rows = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|r| (Ok::<_, std::io::Error>(csv_line(&r)), rx))
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(header_line, rows));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"revenue-os-audit.csv\""),
    );
    Ok(r)
}
