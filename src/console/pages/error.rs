//! A failed request, shown as a page; and the 404 for paths no page answers.

use super::super::operator::Nav;
use super::render;
use crate::store::StoreError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
