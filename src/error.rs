//! The service's top-level error, and the one place that says whether an error is worth
//! retrying: each layer classifies its own errors (`StoreError::is_retryable` for SQLSTATEs
//! and lost connections, `BrokerError::is_retryable`), and this enum and `worker::Failure`
//! delegate to them rather than deciding again.

use crate::contract::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A contract-level outcome (invalid input, unknown tenant, too recent, ...).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error(transparent)]
    Worker(#[from] crate::worker::Failure),
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
}

impl Error {
    /// Transient failures (a lost connection, a serialization conflict) are retried; everything
    /// else is permanent and must not be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_retryable(),
            Error::Broker(e) => e.is_retryable(),
            Error::Worker(f) => f.is_retryable(),
            Error::Kernel(_)
            | Error::Config(_)
            | Error::Catalog(_)
            | Error::Listen { .. }
            | Error::Run(_)
            | Error::Task(_) => false,
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::BrokenPipe
            ),
        }
    }
}
