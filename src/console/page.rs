//! The console's page primitives, beneath both the pages and the extractors: a page's
//! result, rendering a template, the header's navigation, and a failed request shown as a
//! page (with the 404 for paths no page answers).

use crate::store::{OperatorRole, StoreError};
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub struct PageError {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        PageError {
            status,
            title,
            detail: detail.into(),
        }
    }

    pub fn not_found(title: &'static str, detail: impl Into<String>) -> Self {
        PageError::new(StatusCode::NOT_FOUND, title, detail)
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

pub async fn not_found() -> PageError {
    PageError::not_found("Not found", "No such page.")
}

/// What the header shows: who is signed in, and whether signing in is possible at all.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub operator: Option<String>,
    pub role: Option<OperatorRole>,
    pub writable: bool,
    /// Admins see the operators and audit links.
    pub admin: bool,
}

pub type Page = Result<Response, PageError>;

pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

pub fn ok(t: &impl Template) -> Page {
    Ok(render(t))
}
