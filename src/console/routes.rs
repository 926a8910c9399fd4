//! The console's router: which page answers which path, the state every page shares, and
//! the security headers on every answer.

use super::Console;
use super::auth::Sessions;
use super::pages::{approvals, audit, cycle, dead_letters, error, login, overview, tenant};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

/// What every handler reads: the console's parts and the live sessions.
pub struct Shared {
    pub console: Console,
    pub sessions: Sessions,
}

impl Shared {
    /// The bootstrap admin's token (`REVENUE_OS_CONSOLE_TOKEN`), if set.
    pub fn bootstrap_token(&self) -> Option<&str> {
        self.console.token.as_deref().filter(|t| !t.is_empty())
    }

    /// Whether anyone can sign in: a bootstrap token, or a live named operator.
    pub async fn writable(&self) -> bool {
        self.bootstrap_token().is_some()
            || self
                .console
                .store
                .has_operators()
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "console: cannot read operators");
                    false
                })
    }
}

pub type App = axum::extract::State<Arc<Shared>>;

pub fn router(console: Console) -> Router {
    let shared = Arc::new(Shared {
        console,
        sessions: Sessions::default(),
    });
    Router::new()
        .route("/", get(overview::get))
        .route("/tenants/{tenant}", get(tenant::get))
        .route("/cycles/{cycle}", get(cycle::get))
        .route("/approvals", get(approvals::get))
        .route("/approvals/approve", post(approvals::approve))
        .route("/approvals/reject", post(approvals::reject))
        .route("/approvals/bulk", post(approvals::bulk))
        .route("/dead-letters", get(dead_letters::get))
        .route("/audit.csv", get(audit::csv))
        .route("/login", get(login::get).post(login::post))
        .route("/logout", post(login::logout))
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
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
