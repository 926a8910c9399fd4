//! The console's routes: one handler per page, each reading the store and filling a template.
//! Ids in paths are parsed here (a non-UUID is 400); writes go through `decide`.

use super::Console;
use super::auth::{self, Session, Sessions};
use super::chart::{Chart, compact};
use super::view::{self, TenantView};
use crate::store::{ApprovalOutcome, ApprovalRequest, CycleBrief, StoreError};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

struct Inner {
    console: Console,
    sessions: Sessions,
}

type App = State<Arc<Inner>>;

pub fn router(console: Console) -> Router {
    let inner = Arc::new(Inner {
        console,
        sessions: Sessions::default(),
    });
    Router::new()
        .route("/", get(overview))
        .route("/tenants/{tenant}", get(tenant))
        .route("/cycles/{cycle}", get(cycle))
        .route("/approvals", get(approvals))
        .route("/approvals/approve", post(approve))
        .route("/approvals/reject", post(reject))
        .route("/dead-letters", get(dead_letters))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(inner)
}

/// No scripts at all, styles only inline, forms only to this origin, never framed or cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What the header shows: who is signed in, and whether signing in is possible at all.
#[derive(Debug, Clone, Default)]
struct Nav {
    operator: Option<String>,
    writable: bool,
}

impl Inner {
    fn writable(&self) -> bool {
        self.console.token.as_deref().is_some_and(|t| !t.is_empty())
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        if !self.writable() {
            return None;
        }
        self.sessions.find(headers)
    }

    fn nav(&self, session: Option<&Session>) -> Nav {
        Nav {
            operator: session.map(|s| s.operator.clone()),
            writable: self.writable(),
        }
    }
}

/// A failed request, shown as a page.
struct PageError {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl PageError {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        PageError {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "console: store error");
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "The console could not read the database; try again shortly.",
        )
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    status: u16,
    title: &'static str,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            nav: Nav::default(),
            status: self.status.as_u16(),
            title: self.title,
            detail: self.detail,
        };
        (self.status, render(&page)).into_response()
    }
}

type Page = Result<Response, PageError>;

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

fn ok(t: &impl Template) -> Page {
    Ok(render(t))
}

fn uuid(s: &str, what: &'static str) -> Result<Uuid, PageError> {
    Uuid::parse_str(s).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("'{s}' is not a {what} id (a UUID)."),
        )
    })
}

async fn not_found() -> PageError {
    PageError::new(StatusCode::NOT_FOUND, "Not found", "No such page.")
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn short(id: &Uuid) -> String {
    id.to_string()[..8].to_owned()
}

// ---------------------------------------------------------------- overview

struct LatestCell {
    cycle_id: Uuid,
    constraint: String,
    metric: String,
    confidence: String,
    executed_at: String,
}

impl From<&CycleBrief> for LatestCell {
    fn from(c: &CycleBrief) -> Self {
        LatestCell {
            cycle_id: c.cycle_id,
            constraint: c.binding_constraint.clone().unwrap_or_default(),
            metric: c.priority_metric.clone().unwrap_or_default(),
            confidence: c.confidence.map(|v| format!("{v:.2}")).unwrap_or_default(),
            executed_at: time(c.executed_at),
        }
    }
}

struct TenantRow {
    tenant_id: Uuid,
    latest: Option<LatestCell>,
    pending: i64,
    reverts: i64,
    failed: i64,
}

struct RejectedRow {
    when: String,
    message_id: String,
    tenant_id: Uuid,
    code: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    tenants: Vec<TenantRow>,
    rejected: Vec<RejectedRow>,
    pending_total: i64,
    reverts_total: i64,
    failed_total: i64,
}

/// Days the overview's counts look back.
const RECENT_DAYS: i32 = 7;

async fn rejected_rows(inner: &Inner, limit: i64) -> Result<Vec<RejectedRow>, PageError> {
    Ok(inner
        .console
        .store
        .rejected_triggers(limit)
        .await?
        .into_iter()
        .map(|r| RejectedRow {
            when: time(r.rejected_at),
            message_id: r.message_id,
            tenant_id: r.tenant_id,
            code: r.error_code,
            reason: r.message,
        })
        .collect())
}

async fn overview(State(inner): App, headers: HeaderMap) -> Page {
    let session = inner.session(&headers);
    let summaries = inner
        .console
        .store
        .tenant_summaries(Utc::now(), RECENT_DAYS)
        .await?;
    let tenants: Vec<TenantRow> = summaries
        .iter()
        .map(|s| TenantRow {
            tenant_id: s.tenant_id,
            latest: s.latest.as_ref().map(LatestCell::from),
            pending: s.pending_approvals,
            reverts: s.reverts,
            failed: s.failed_cycles,
        })
        .collect();
    ok(&OverviewPage {
        nav: inner.nav(session.as_ref()),
        pending_total: tenants.iter().map(|t| t.pending).sum(),
        reverts_total: tenants.iter().map(|t| t.reverts).sum(),
        failed_total: tenants.iter().map(|t| t.failed).sum(),
        tenants,
        rejected: rejected_rows(&inner, 10).await?,
    })
}

// ---------------------------------------------------------------- approvals

/// A pending action as the queue shows it, with the hash its form carries.
struct PendingRow {
    tenant_id: Uuid,
    tenant_short: String,
    cycle_id: Uuid,
    cycle_short: String,
    action_id: String,
    change: String,
    notes: String,
    hash: String,
    created: String,
}

async fn pending(inner: &Inner, tenant: Option<Uuid>) -> Result<Vec<PendingRow>, PageError> {
    let rows = inner.console.store.pending_approvals(tenant).await?;
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

async fn approvals_page(
    inner: &Inner,
    session: Option<&Session>,
    status: StatusCode,
    message: Option<(&'static str, String)>,
) -> Page {
    let page = ApprovalsPage {
        nav: inner.nav(session),
        pending: pending(inner, None).await?,
        csrf: session.map(|s| s.csrf.clone()),
        message,
    };
    Ok((status, render(&page)).into_response())
}

async fn approvals(State(inner): App, headers: HeaderMap) -> Page {
    let session = inner.session(&headers);
    approvals_page(&inner, session.as_ref(), StatusCode::OK, None).await
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    cycle_id: String,
    action_id: String,
    hash: String,
    csrf: String,
    reason: Option<String>,
}

async fn approve(State(inner): App, headers: HeaderMap, Form(f): Form<DecisionForm>) -> Page {
    decide(&inner, &headers, f, false).await
}

async fn reject(State(inner): App, headers: HeaderMap, Form(f): Form<DecisionForm>) -> Page {
    decide(&inner, &headers, f, true).await
}

/// A write: token configured (else 403), a session (else 401), its CSRF token (else 403),
/// then the approver's verdict.
async fn decide(inner: &Inner, headers: &HeaderMap, f: DecisionForm, reject: bool) -> Page {
    if !inner.writable() {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console was started without REVENUE_OS_CONSOLE_TOKEN: it takes no decisions.",
        ));
    }
    let Some(session) = inner.sessions.find(headers) else {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Deciding needs a signed-in operator: sign in at /login.",
        ));
    };
    if !auth::ct_eq(f.csrf.as_bytes(), session.csrf.as_bytes()) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form's CSRF token does not match your session; reload the page and try again.",
        ));
    }
    let cycle_id = uuid(&f.cycle_id, "cycle")?;
    let by = session.operator.clone();
    let request = if reject {
        let reason = f.reason.unwrap_or_default().trim().to_owned();
        if reason.is_empty() {
            return approvals_page(
                inner,
                Some(&session),
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
    let Some(approver) = inner.console.approver.as_ref() else {
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
    let a = &f.action_id;
    let (status, message) = match decided {
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
    };
    tracing::info!(operator = %session.operator, %cycle_id, action_id = %f.action_id,
                   status = status.as_u16(), "console: decision");
    approvals_page(inner, Some(&session), status, Some(message)).await
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    message: Option<String>,
}

async fn login_page(State(inner): App, headers: HeaderMap) -> Page {
    let session = inner.session(&headers);
    ok(&LoginPage {
        nav: inner.nav(session.as_ref()),
        message: None,
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    operator: String,
    token: String,
}

async fn login(State(inner): App, Form(f): Form<LoginForm>) -> Page {
    let Some(token) = inner.console.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console was started without REVENUE_OS_CONSOLE_TOKEN: there is nothing to sign in to.",
        ));
    };
    let operator = f.operator.trim();
    let name_ok = !operator.is_empty() && operator.chars().count() <= 64;
    if !auth::ct_eq(f.token.as_bytes(), token.as_bytes()) || !name_ok {
        tracing::warn!("console: failed sign-in");
        let page = LoginPage {
            nav: inner.nav(None),
            message: Some(if name_ok {
                "Wrong operator token.".into()
            } else {
                "Enter your name (at most 64 characters).".into()
            }),
        };
        return Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response());
    }
    let (id, _) = inner.sessions.create(operator);
    tracing::info!(%operator, "console: signed in");
    let mut r = Redirect::to("/approvals").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&id))
            .map_err(|_| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", "cookie"))?,
    );
    Ok(r)
}

async fn logout(State(inner): App, headers: HeaderMap) -> Response {
    inner.sessions.remove(&headers);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---------------------------------------------------------------- tenant

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
                    format!("{s}: {}", super::view::outcome(c)),
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

async fn tenant(State(inner): App, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let id = uuid(&id, "tenant")?;
    let session = inner.session(&headers);
    let console = &inner.console;
    let Some(v) = view::tenant(&console.store, &console.catalog, id).await? else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
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
    let chart = Chart::daily(
        &v.series,
        v.target.as_ref().map(|(_, value)| ("target", *value)),
        &rules,
    );
    let page = TenantPage {
        nav: inner.nav(session.as_ref()),
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
        pending: pending(&inner, Some(id)).await?,
        csrf: session.as_ref().map(|s| s.csrf.clone()),
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

// ---------------------------------------------------------------- cycle

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

async fn cycle(State(inner): App, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let id = uuid(&id, "cycle")?;
    let session = inner.session(&headers);
    let Some(c) = inner.console.store.cycle_detail(id).await? else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such cycle",
            format!("There is no cycle {id}."),
        ));
    };
    let b = &c.brief;
    ok(&CyclePage {
        nav: inner.nav(session.as_ref()),
        id,
        tenant_id: b.tenant_id,
        status: b.status.clone(),
        error_code: match b.skip_reason {
            Some(_) => super::view::outcome(b),
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

// ---------------------------------------------------------------- dead letters

/// Messages a peek takes (and puts back).
const PEEK_LIMIT: usize = 20;

struct LetterRow {
    message_id: String,
    tenant_id: String,
    reason: String,
    routing_key: String,
    body: String,
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    nav: Nav,
    rejected: Vec<RejectedRow>,
    queue: Option<String>,
    peeked: bool,
    peek_limit: usize,
    letters: Vec<LetterRow>,
    peek_error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PeekQuery {
    peek: Option<String>,
}

async fn peek(q: &super::DeadQueue) -> Result<Vec<LetterRow>, String> {
    use crate::broker::{self, dlq};
    let name = broker::connection_name(&q.topology.prefix, "console");
    let work = async {
        let conn = broker::connect(&q.amqp, &name)
            .await
            .map_err(|e| e.to_string())?;
        let listed = dlq::list(&conn, &q.topology, PEEK_LIMIT).await;
        let _ = conn.close(200, "peeked".into()).await;
        listed.map_err(|e| e.to_string())
    };
    let listed = tokio::time::timeout(std::time::Duration::from_secs(5), work)
        .await
        .map_err(|_| "the broker did not answer within 5 s".to_owned())??;
    Ok(listed
        .into_iter()
        .map(|d| LetterRow {
            message_id: d.message_id.unwrap_or_else(|| "(none)".into()),
            tenant_id: d.tenant_id.unwrap_or_else(|| "-".into()),
            reason: d.reason.unwrap_or_else(|| "-".into()),
            routing_key: d.routing_key,
            body: d.body.chars().take(300).collect(),
        })
        .collect())
}

async fn dead_letters(State(inner): App, headers: HeaderMap, Query(q): Query<PeekQuery>) -> Page {
    let session = inner.session(&headers);
    let dq = inner.console.dead_queue.as_ref();
    let peeked = q.peek.is_some() && dq.is_some();
    let (letters, peek_error) = match dq.filter(|_| peeked) {
        None => (Vec::new(), None),
        Some(dq) => match peek(dq).await {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(format!("Could not read the queue: {e}"))),
        },
    };
    ok(&DeadLettersPage {
        nav: inner.nav(session.as_ref()),
        rejected: rejected_rows(&inner, 200).await?,
        queue: dq.map(|d| d.topology.dead_queue.clone()),
        peeked,
        peek_limit: PEEK_LIMIT,
        letters,
        peek_error,
    })
}
