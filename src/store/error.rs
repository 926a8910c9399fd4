//! The store's error type and THE place that classifies database errors as retryable.

use std::error::Error as _;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Says what the server said: SQLSTATE, its condition name, the message and detail
    /// (`database: 55P03 lock_not_available: canceling statement due to lock timeout`), or,
    /// without a server error, the driver's words with their causes.
    #[error("database: {}", describe(.0))]
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
    /// The client-side deadline passed with no answer (a blackholed link, a hung server).
    #[error("database: no answer within {0:?}")]
    Deadline(std::time::Duration),
    /// A batch met rows recorded before (a repeat it did not look for): nothing of it is
    /// written, and its items are worth trying again one by one.
    #[error("database: batch conflict: {0}")]
    Conflict(String),
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
    /// timeout (55P03), statement timeout (57014), pool timeout, the client deadline: worth
    /// retrying (the delivery limit still caps a trigger that keeps failing). Constraint violations and
    /// bad data are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => db_error_is_retryable(e),
            StoreError::Pool(_) | StoreError::Deadline(_) | StoreError::Conflict(_) => true,
            StoreError::Config(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => false,
        }
    }

    /// The database cannot be reached at all (no connection, a lost or silent link, a server
    /// shutting down or starting), as opposed to a failure of this one call (serialization,
    /// deadlock, lock timeout). Callers wait such an outage out instead of spending retries.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Deadline(_) => true,
            StoreError::Db(e) => match e.code() {
                Some(state) => state_is_unreachable(state),
                None => db_error_is_retryable(e),
            },
            StoreError::Config(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
            | StoreError::Conflict(_) => false,
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

/// Server errors that mean "not the primary we need, right now": the connection is gone or
/// the server is going away, or (25006, read_only_sql_transaction) the server is a standby or
/// a demoted primary: after a failover a connection may still point there. Waited out like an
/// outage, while the pool replaces the connection with one to the new primary.
fn state_is_unreachable(state: &SqlState) -> bool {
    state.code().starts_with("08")
        || *state == SqlState::ADMIN_SHUTDOWN
        || *state == SqlState::CRASH_SHUTDOWN
        || *state == SqlState::CANNOT_CONNECT_NOW
        || *state == SqlState::READ_ONLY_SQL_TRANSACTION
}

/// The condition names of the SQLSTATEs a worker meets (PostgreSQL's appendix A); others are
/// shown by code alone.
const CONDITIONS: &[(&str, &str)] = &[
    ("08000", "connection_exception"),
    ("08001", "sqlclient_unable_to_establish_sqlconnection"),
    ("08003", "connection_does_not_exist"),
    ("08004", "sqlserver_rejected_establishment_of_sqlconnection"),
    ("08006", "connection_failure"),
    ("08P01", "protocol_violation"),
    ("22001", "string_data_right_truncation"),
    ("22P02", "invalid_text_representation"),
    ("23502", "not_null_violation"),
    ("23503", "foreign_key_violation"),
    ("23505", "unique_violation"),
    ("23514", "check_violation"),
    ("25006", "read_only_sql_transaction"),
    ("25P02", "in_failed_sql_transaction"),
    ("25P03", "idle_in_transaction_session_timeout"),
    ("28000", "invalid_authorization_specification"),
    ("28P01", "invalid_password"),
    ("3D000", "invalid_catalog_name"),
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("42501", "insufficient_privilege"),
    ("42601", "syntax_error"),
    ("42703", "undefined_column"),
    ("42P01", "undefined_table"),
    ("53100", "disk_full"),
    ("53200", "out_of_memory"),
    ("53300", "too_many_connections"),
    ("55P03", "lock_not_available"),
    ("57014", "query_canceled"),
    ("57P01", "admin_shutdown"),
    ("57P02", "crash_shutdown"),
    ("57P03", "cannot_connect_now"),
    ("P0001", "raise_exception"),
];

fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        if tls_refused(e) {
            return "the server does not support TLS, but sslmode is require, verify-ca or \
                    verify-full"
                .into();
        }
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            out.push_str(&format!(": {s}"));
            source = s.source();
        }
        return out;
    };
    let code = db.code().code();
    let mut out = match CONDITIONS.iter().find(|(c, _)| *c == code) {
        Some((_, name)) => format!("{code} {name}: {}", db.message()),
        None => format!("{code}: {}", db.message()),
    };
    if let Some(detail) = db.detail() {
        out.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        out.push_str(&format!(" (hint: {hint})"));
    }
    out
}

/// The server answered SSLRequest with 'N' and TLS was not optional (tokio-postgres has no
/// error kind to ask, only these words).
fn tls_refused(e: &tokio_postgres::Error) -> bool {
    e.source()
        .is_some_and(|s| s.to_string() == "server does not support TLS")
}

fn db_error_is_retryable(e: &tokio_postgres::Error) -> bool {
    if let Some(state) = e.code() {
        let code = state.code();
        return code.starts_with("08") // connection exception
            || *state == SqlState::READ_ONLY_SQL_TRANSACTION // a standby: the primary moved
            || *state == SqlState::T_R_SERIALIZATION_FAILURE
            || *state == SqlState::T_R_DEADLOCK_DETECTED
            || *state == SqlState::ADMIN_SHUTDOWN
            || *state == SqlState::CRASH_SHUTDOWN
            || *state == SqlState::CANNOT_CONNECT_NOW
            || *state == SqlState::TOO_MANY_CONNECTIONS
            || *state == SqlState::LOCK_NOT_AVAILABLE // lock_timeout while queued
            || *state == SqlState::QUERY_CANCELED; // statement_timeout: load, worth one more go
    }
    // Like any failed connect: the server, not the work, is at fault.
    if e.is_closed() || tls_refused(e) {
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

    #[test]
    fn a_silent_link_is_unreachable_and_bad_data_is_not() {
        let d = StoreError::Deadline(std::time::Duration::from_secs(1));
        assert!(d.is_retryable() && d.is_unreachable());
        assert!(StoreError::Pool("timeout".into()).is_unreachable());
        assert!(!StoreError::Corrupt("x".into()).is_unreachable());
    }

    #[test]
    fn a_read_only_server_is_unreachable_and_a_constraint_is_not() {
        for state in [
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ] {
            assert!(state_is_unreachable(&state), "{}", state.code());
        }
        assert_eq!(SqlState::READ_ONLY_SQL_TRANSACTION.code(), "25006");
        for state in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::INSUFFICIENT_PRIVILEGE,
        ] {
            assert!(!state_is_unreachable(&state), "{}", state.code());
        }
    }

    #[test]
    fn the_condition_table_is_sorted_and_has_no_duplicates() {
        assert!(CONDITIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
