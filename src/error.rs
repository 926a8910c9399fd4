//! The service's error type, and the one place that says whether an error is worth retrying.

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
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Transient failures (a lost connection, a serialization conflict) are retried; everything
    /// else is permanent and must not be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kernel(_) => false,
            Error::Config(_) | Error::Catalog(_) => false,
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
