//! The operator as axum extractors, so no handler checks a session or a CSRF token itself:
//! `Visitor` is whoever reads (signed in or not, for the header), `Operator` is a signed-in
//! person (a read-only console refuses with 403, no session with 401), and `Signed<F>` is a
//! form `F` posted by an operator whose session's CSRF token it carries (else 403).

use super::auth::{self, Session};
use super::pages::error::PageError;
use super::routes::Shared;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// What the header shows: who is signed in, and whether signing in is possible at all.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub operator: Option<String>,
    pub writable: bool,
}

/// Whoever asks for a page: their session, if they are signed in.
pub struct Visitor {
    pub session: Option<Session>,
    pub nav: Nav,
}

impl Visitor {
    pub fn csrf(&self) -> Option<String> {
        self.session.as_ref().map(|s| s.csrf.clone())
    }
}

fn visitor(parts: &Parts, shared: &Shared) -> Visitor {
    let writable = shared.writable();
    let session = writable
        .then(|| shared.sessions.find(&parts.headers))
        .flatten();
    Visitor {
        nav: Nav {
            operator: session.as_ref().map(|s| s.operator.clone()),
            writable,
        },
        session,
    }
}

impl FromRequestParts<Arc<Shared>> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(visitor(parts, shared))
    }
}

/// A signed-in operator.
pub struct Operator {
    pub session: Session,
    pub nav: Nav,
}

impl Operator {
    pub fn name(&self) -> &str {
        &self.session.operator
    }
}

impl FromRequestParts<Arc<Shared>> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        if !shared.writable() {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Read-only console",
                "This console was started without REVENUE_OS_CONSOLE_TOKEN: it takes no decisions.",
            ));
        }
        let v = visitor(parts, shared);
        match v.session {
            Some(session) => Ok(Operator {
                session,
                nav: v.nav,
            }),
            None => Err(PageError::new(
                StatusCode::UNAUTHORIZED,
                "Sign in first",
                "Deciding needs a signed-in operator: sign in at /login.",
            )),
        }
    }
}

/// A form that carries its session's CSRF token.
pub trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// A form posted by a signed-in operator, its CSRF token checked.
pub struct Signed<F> {
    pub operator: Operator,
    pub form: F,
}

impl<F> FromRequest<Arc<Shared>> for Signed<F>
where
    F: CsrfForm + DeserializeOwned + Send,
{
    type Rejection = PageError;

    async fn from_request(req: Request, shared: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let operator = Operator::from_request_parts(&mut parts, shared).await?;
        let req = Request::from_parts(parts, body);
        let Form(form) = Form::<F>::from_request(req, shared)
            .await
            .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, "Bad request", e.body_text()))?;
        if !auth::ct_eq(form.csrf().as_bytes(), operator.session.csrf.as_bytes()) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form's CSRF token does not match your session; reload the page and try again.",
            ));
        }
        Ok(Signed { operator, form })
    }
}
