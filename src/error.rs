//! The service's top-level error and THE table from error to exit code.
//!
//! Whether a failure is worth retrying is said once per layer for its own errors
//! (`StoreError::is_retryable` for SQLSTATEs and lost connections, `BrokerError::is_retryable`)
//! and decided once, for a delivery, by `worker::Failure::is_retryable`, which delegates to them.

use crate::contract::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A contract-level outcome (invalid input, unknown tenant, too recent, ...).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A cycle ran and recorded a failure; the body is what the worker announced.
    #[error("cycle {status}: {body}")]
    CycleFailed {
        status: String,
        body: serde_json::Value,
    },
    /// A request the product refused as asked (a stale approval hash, an action no longer
    /// waiting); the body says why.
    #[error("refused: {body}")]
    Refused { body: serde_json::Value },
    /// Bad flags or arguments that clap cannot check.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Catalog(#[from] crate::contract::catalog::CatalogError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error(transparent)]
    Worker(#[from] crate::worker::Failure),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// An end-to-end run (`demo`, `bench`) did not see what it waited for, or could not set up.
    #[error("{0}")]
    Run(String),
    #[error("a task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A service the command needs does not answer: which, where, and the README's command
    /// that starts it, in one line.
    #[error("{service} is not reachable at {addr} ({cause}); start it with: {start}")]
    ServiceDown {
        service: &'static str,
        addr: String,
        cause: String,
        start: &'static str,
    },
}

/// Exit codes: 0 success; 1 the operator's or the environment's problem (flags, files,
/// configuration, services); 2 a contract outcome, printed as data on stdout.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_CONTRACT: u8 = 2;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Kernel(_) | Error::CycleFailed { .. } | Error::Refused { .. } => EXIT_CONTRACT,
            Error::Usage(_)
            | Error::Config(_)
            | Error::Catalog(_)
            | Error::Store(_)
            | Error::Broker(_)
            | Error::Worker(_)
            | Error::Console(_)
            | Error::Run(_)
            | Error::Task(_)
            | Error::Listen { .. }
            | Error::Io(_)
            | Error::ServiceDown { .. } => EXIT_FAILURE,
        }
    }

    /// An unreachable database or broker, said as which service, where and how to start it;
    /// any other error as it is.
    pub fn with_service_hint(self, settings: &crate::config::Settings) -> Self {
        match self {
            Error::Store(e) if e.is_unreachable() => Error::ServiceDown {
                service: "PostgreSQL",
                addr: crate::store::target_address(&settings.database),
                cause: e.to_string(),
                start: crate::store::START_COMMAND,
            },
            Error::Broker(e) if e.is_refused() => Error::ServiceDown {
                service: "RabbitMQ",
                addr: crate::broker::address(&settings.amqp.url)
                    .map_or_else(|| settings.amqp.url.clone(), |(h, p)| format!("{h}:{p}")),
                cause: e.to_string(),
                start: crate::broker::START_COMMAND,
            },
            other => other,
        }
    }

    /// What a contract outcome prints on stdout, pretty JSON in the contract's field order;
    /// other errors are a line on stderr.
    pub fn data(&self) -> Option<String> {
        match self {
            Error::Kernel(e) => serde_json::to_string_pretty(e).ok(),
            Error::CycleFailed { body, .. } | Error::Refused { body } => {
                serde_json::to_string_pretty(body).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_outcomes_exit_2_and_the_rest_1() {
        assert_eq!(Error::Kernel(KernelError::internal("x")).exit_code(), 2);
        let failed = Error::CycleFailed {
            status: "failed".into(),
            body: serde_json::json!({"code": "INSUFFICIENT_DATA"}),
        };
        assert_eq!(failed.exit_code(), 2);
        assert!(failed.data().unwrap().contains("INSUFFICIENT_DATA"));
        assert_eq!(Error::Run("x".into()).exit_code(), 1);
        assert!(Error::Usage("x".into()).data().is_none());
    }
}
