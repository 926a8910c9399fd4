//! The console's router: which page answers which path, and the security headers on every
//! answer.

use super::Console;
use super::auth::Sessions;
use super::page;
use super::pages::{approvals, audit, cycle, dead_letters, login, overview, tenant};
use super::state::Shared;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

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
        .fallback(page::not_found)
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
