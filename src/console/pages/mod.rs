//! One file per page: each reads the store and fills its template. Ids in paths are parsed
//! here (a non-UUID is 400); who may write is the extractors' business (`operator.rs`).

pub mod approvals;
pub mod audit;
pub mod cycle;
pub mod dead_letters;
pub mod login;
pub mod overview;
pub mod tenant;

pub use super::page::{Page, PageError, ok, render};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
