//! `/login` and `/logout`: the operator token in, a session cookie out.

use super::super::auth;
use super::super::operator::{Nav, Visitor};
use super::super::routes::App;
use super::error::PageError;
use super::{Page, ok, render};
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
    operator: String,
    token: String,
}

pub async fn post(State(shared): App, Form(f): Form<LoginForm>) -> Page {
    let Some(token) = shared.console.token.as_deref().filter(|t| !t.is_empty()) else {
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
            nav: Nav {
                operator: None,
                writable: shared.writable(),
            },
            message: Some(if name_ok {
                "Wrong operator token.".into()
            } else {
                "Enter your name (at most 64 characters).".into()
            }),
        };
        return Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response());
    }
    let (id, _) = shared.sessions.create(operator);
    tracing::info!(%operator, "console: signed in");
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
