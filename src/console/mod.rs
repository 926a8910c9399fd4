//! The operator console: server-rendered pages over the store (overview, tenant, cycle,
//! approvals, dead letters) on its own listener, `console.listen`. Read-only, except approve
//! and reject, which need the operator token (`REVENUE_OS_CONSOLE_TOKEN`), a session and a
//! CSRF token (`auth.rs`). Templates are askama's (`src/console/templates/`), compiled and
//! escaped by the engine; charts are inline SVG computed here (`chart.rs`).
//!
//! The console does not decide approvals: whoever starts it (`app`) passes an `Approver`.
//! `revenue-os report` renders the same tenant view as text (`report.rs`).

pub mod audit;
mod auth;
pub mod chart;
mod operator;
mod page;
mod pages;
pub mod report;
mod routes;
mod state;
pub mod view;

pub use auth::{ct_eq, new_token, token_hash};

use crate::broker::DeadQueueReader;
use crate::contract::catalog::Catalog;
use crate::store::{ApprovalOutcome, ApprovalRequest, Store, StoreError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "console: refusing to listen on {addr}, which is not a loopback address, without an operator token; set REVENUE_OS_CONSOLE_TOKEN or listen on 127.0.0.1"
    )]
    OpenWithoutToken { addr: SocketAddr },
    #[error("console: console.listen '{addr}' is not an address (host:port): {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("console: cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Takes approve/reject decisions (`app::decide`); supplied by the caller so the console
/// holds no rules and never imports `app`.
pub trait Approver: Send + Sync {
    fn decide(
        &self,
        cycle_id: Uuid,
        action_id: String,
        request: ApprovalRequest,
    ) -> BoxFuture<'_, Result<ApprovalOutcome, String>>;

    /// What approving would publish: (exchange, routing key, message id, body).
    fn release_preview(
        &self,
        _tenant: Uuid,
        _cycle_id: Uuid,
        _action: &crate::contract::Action,
    ) -> Option<(String, String, String, String)> {
        None
    }
}

/// Everything the console runs on.
#[derive(Clone)]
pub struct Console {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    /// The operator token; `None` makes the console read-only.
    pub token: Option<String>,
    pub approver: Option<Arc<dyn Approver>>,
    /// Where the dead-letter page peeks at the triggers' dead queue.
    pub dead_queue: Option<Arc<DeadQueueReader>>,
}

/// The address to bind, refusing a non-loopback one without a token.
pub fn check_listen(listen: &str, token: Option<&str>) -> Result<SocketAddr, ConsoleError> {
    let addr: SocketAddr =
        listen
            .parse()
            .map_err(|e: std::net::AddrParseError| ConsoleError::BadAddress {
                addr: listen.to_owned(),
                reason: e.to_string(),
            })?;
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        return Err(ConsoleError::OpenWithoutToken { addr });
    }
    Ok(addr)
}

/// Binds `listen` (after `check_listen`) and serves until `shutdown`. Returns the bound
/// address (useful with port 0) and the server task.
pub async fn serve(
    listen: &str,
    console: Console,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ConsoleError> {
    let addr = check_listen(listen, console.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ConsoleError::Listen {
            addr: listen.to_owned(),
            source: e,
        })?;
    let bound = listener.local_addr().map_err(|e| ConsoleError::Listen {
        addr: listen.to_owned(),
        source: e,
    })?;
    let app = routes::router(console);
    let task = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "console stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_address_needs_a_token() {
        assert!(check_listen("127.0.0.1:9465", None).is_ok());
        assert!(check_listen("[::1]:9465", None).is_ok());
        let e = check_listen("0.0.0.0:9465", None).unwrap_err();
        assert!(matches!(e, ConsoleError::OpenWithoutToken { .. }));
        assert!(e.to_string().contains("REVENUE_OS_CONSOLE_TOKEN"));
        assert!(check_listen("0.0.0.0:9465", Some("")).is_err());
        assert!(check_listen("0.0.0.0:9465", Some("s3cret")).is_ok());
        assert!(matches!(
            check_listen("localhost", None),
            Err(ConsoleError::BadAddress { .. })
        ));
    }
}
