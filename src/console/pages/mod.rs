//! One file per page: each reads the store and fills its template. Ids in paths are parsed
//! here (a non-UUID is 400); who may write is the extractors' business (`operator.rs`).

pub mod approvals;
pub mod audit;
pub mod cycle;
pub mod dead_letters;
pub mod error;
pub mod login;
pub mod overview;
pub mod tenant;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use error::PageError;
use uuid::Uuid;

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

pub fn uuid(s: &str, what: &'static str) -> Result<Uuid, PageError> {
    Uuid::parse_str(s).map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("'{s}' is not a {what} id (a UUID)."),
        )
    })
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn short(id: &Uuid) -> String {
    id.to_string()[..8].to_owned()
}
