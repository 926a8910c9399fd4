//! `/login` and `/logout`: the operator token in, a session cookie out.

use super::super::auth;
use super::super::operator::{Nav, Visitor, nav};
use super::super::state::App;
use super::PageError;
use super::{Page, ok, render};
use crate::store::OperatorRole;
use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    message: Option<String>,
}

pub async fn get(who: Visitor) -> Page {
    ok(&LoginPage {
        nav: who.nav,
        message: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// Only with the bootstrap token: a named operator's token names them.
    operator: Option<String>,
    token: String,
}

pub async fn post(State(shared): App, Form(f): Form<LoginForm>) -> Page {
    let writable = shared.writable().await;
    if !writable {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console has no operators and was started without REVENUE_OS_CONSOLE_TOKEN: there is nothing to sign in to.",
        ));
    }
    let typed = f.operator.unwrap_or_default();
    let typed = typed.trim();
    let refuse = |message: &str| {
        tracing::warn!("console: failed sign-in");
        let page = LoginPage {
            nav: nav(None, writable),
            message: Some(message.to_owned()),
        };
        Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response())
    };
    // The bootstrap token signs in an admin under the typed name; a named operator's token
    // signs in that operator, whatever was typed.
    let (name, role, named) = match shared.bootstrap_token() {
        Some(t) if auth::ct_eq(f.token.as_bytes(), t.as_bytes()) => {
            if typed.chars().count() > 64 {
                return refuse("Enter your name (at most 64 characters).");
            }
            let name = if typed.is_empty() { "admin" } else { typed };
            (name.to_owned(), OperatorRole::Admin, false)
        }
        _ => match shared
            .console
            .store
            .operator_by_token(&auth::token_hash(f.token.trim()))
            .await?
        {
            Some(op) => (op.name, op.role, true),
            None => return refuse("Wrong operator token."),
        },
    };
    // Recorded before the session exists: a sign-in the trail cannot keep does not happen.
    shared
        .console
        .store
        .record_sign_in(&name, role, named)
        .await?;
    let (id, _) = shared.sessions.create(&name, role, named);
    tracing::info!(operator = %name, %role, "console: signed in");
    let mut r = Redirect::to("/approvals").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&id))
            .map_err(|_| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "Error", "cookie"))?,
    );
    Ok(r)
}

pub async fn logout(State(shared): App, headers: HeaderMap) -> Response {
    shared.sessions.remove(&headers);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
