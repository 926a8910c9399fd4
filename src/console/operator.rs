//! The operator as axum extractors, so no handler checks a session or a CSRF token itself:
//! `Visitor` is whoever reads (signed in or not, for the header), `Operator` is a signed-in
//! person (a read-only console refuses with 403, no session with 401, a revoked operator's
//! session with 401), and `Signed<F>` is a form `F` posted by an operator whose session's
//! CSRF token it carries (else 403). What a role may do is `approvals::roles`.

use super::auth::{self, Session};
pub use super::page::Nav;
use super::page::PageError;
use super::state::Shared;
use crate::approvals::roles;
use crate::store::OperatorRole;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Whoever asks for a page: their session, if they are signed in.
pub struct Visitor {
    pub session: Option<Session>,
    pub nav: Nav,
}

impl Visitor {
    /// The CSRF token for decide forms: only a role that may decide gets the forms.
    pub fn csrf(&self) -> Option<String> {
        self.session
            .as_ref()
            .filter(|s| roles::may_decide(s.role))
            .map(|s| s.csrf.clone())
    }
}

pub fn nav(session: Option<&Session>, writable: bool) -> Nav {
    Nav {
        operator: session.map(|s| s.operator.clone()),
        role: session.map(|s| s.role),
        writable,
        admin: session.is_some_and(|s| roles::may_administer(s.role)),
    }
}

async fn visitor(parts: &Parts, shared: &Shared) -> Visitor {
    let writable = shared.writable().await;
    let session = writable
        .then(|| shared.sessions.find(&parts.headers))
        .flatten();
    Visitor {
        nav: nav(session.as_ref(), writable),
        session,
    }
}

impl FromRequestParts<Arc<Shared>> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(visitor(parts, shared).await)
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

    /// Refused (403) unless the operator's role passes `may`.
    pub fn allowed(&self, may: fn(OperatorRole) -> bool, what: &str) -> Result<(), PageError> {
        if may(self.session.role) {
            return Ok(());
        }
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "{} is signed in as a {}, who may not {what}.",
                self.session.operator, self.session.role
            ),
        ))
    }
}

impl FromRequestParts<Arc<Shared>> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        if !shared.writable().await {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Read-only console",
                "This console was started without REVENUE_OS_CONSOLE_TOKEN: it takes no decisions.",
            ));
        }
        let v = visitor(parts, shared).await;
        match v.session {
            // A named operator revoked since signing in is signed out; a role changed by
            // `operator add` after a revoke takes effect at once.
            Some(mut session) if session.named => {
                let live = shared
                    .console
                    .store
                    .live_operator(&session.operator)
                    .await?;
                let Some(live) = live else {
                    shared.sessions.remove(&parts.headers);
                    return Err(PageError::new(
                        StatusCode::UNAUTHORIZED,
                        "Signed out",
                        "Your operator was revoked: sign in again with a valid token.",
                    ));
                };
                session.role = live.role;
                Ok(Operator {
                    nav: nav(Some(&session), true),
                    session,
                })
            }
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
    /// Who may post it, and what it does: checked before the CSRF token, since a role that
    /// is shown no such form has no token to send (its post is refused for its role, 403,
    /// not as an expired form).
    fn role() -> (fn(OperatorRole) -> bool, &'static str) {
        (|_| true, "post this form")
    }
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
        let (may, what) = F::role();
        operator.allowed(may, what)?;
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
