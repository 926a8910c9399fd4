//! The state every console handler shares: the console's parts and the live sessions.

use super::Console;
use super::auth::Sessions;
use std::sync::Arc;

/// What every handler reads: the console's parts and the live sessions.
pub struct Shared {
    pub console: Console,
    pub sessions: Sessions,
}

impl Shared {
    /// The bootstrap admin's token (`REVENUE_OS_CONSOLE_TOKEN`), if set.
    pub fn bootstrap_token(&self) -> Option<&str> {
        self.console.token.as_deref().filter(|t| !t.is_empty())
    }

    /// Whether anyone can sign in: a bootstrap token, or a live named operator.
    pub async fn writable(&self) -> bool {
        self.bootstrap_token().is_some()
            || self
                .console
                .store
                .has_operators()
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "console: cannot read operators");
                    false
                })
    }
}

pub type App = axum::extract::State<Arc<Shared>>;
