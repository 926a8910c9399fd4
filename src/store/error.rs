//! The store's error type and THE place that classifies database errors as retryable.

use std::error::Error as _;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Waiting for or creating a pooled connection failed (timeout, closed pool).
    #[error("database pool: {0}")]
    Pool(String),
    /// The settings cannot make a pool or a connection (bad URL, bad size): fix and restart.
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration: {0}")]
    Migrate(String),
    /// A stored row the store cannot read back (hand-edited or from a newer version).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            // Keep the driver error so its SQLSTATE / IO cause can be classified.
            deadpool_postgres::PoolError::Backend(e) => StoreError::Db(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

impl StoreError {
    /// Connection loss (08xxx, IO, closed), serialization failure (40001), deadlock (40P01),
    /// server shutdown or start-up (57P01/57P02/57P03), too many connections (53300), lock
    /// timeout (55P03), pool timeout: worth retrying. Constraint violations and
    /// bad data are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => db_error_is_retryable(e),
            StoreError::Pool(_) => true,
            StoreError::Config(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
        }
    }

    /// The SQLSTATE of a server error, if any.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            StoreError::Db(e) => e.code(),
            _ => None,
        }
    }
}

fn db_error_is_retryable(e: &tokio_postgres::Error) -> bool {
    if let Some(state) = e.code() {
        let code = state.code();
        return code.starts_with("08") // connection exception
            || *state == SqlState::T_R_SERIALIZATION_FAILURE
            || *state == SqlState::T_R_DEADLOCK_DETECTED
            || *state == SqlState::ADMIN_SHUTDOWN
            || *state == SqlState::CRASH_SHUTDOWN
            || *state == SqlState::CANNOT_CONNECT_NOW
            || *state == SqlState::TOO_MANY_CONNECTIONS
            || *state == SqlState::LOCK_NOT_AVAILABLE; // lock_timeout while queued
    }
    if e.is_closed() {
        return true;
    }
    // A connect timeout or a reset socket arrives as an io::Error somewhere in the chain.
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_data_and_settings_are_permanent() {
        assert!(!StoreError::Corrupt("x".into()).is_retryable());
        assert!(!StoreError::Migrate("x".into()).is_retryable());
        assert!(StoreError::Pool("timeout".into()).is_retryable());
    }
}
