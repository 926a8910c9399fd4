//! Retry classification on real server errors, and the pool surviving dropped connections.

use crate::common::db::{TestDb, admin_execute};
use revenue_os::store::StoreError;

async fn raise(db: &TestDb, sqlstate: &str) -> StoreError {
    let client = db.store().pool().get().await.unwrap();
    let err = client
        .batch_execute(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$"
        ))
        .await
        .unwrap_err();
    StoreError::from(err)
}

#[tokio::test]
async fn sqlstates_are_classified_in_one_place() {
    let db = TestDb::new().await;
    for code in [
        "40001", "40P01", "57P01", "57P02", "57P03", "08006", "08001", "55P03", "53300",
    ] {
        let e = raise(&db, code).await;
        assert!(e.is_retryable(), "{code} should be retryable");
    }
    for code in ["23505", "23514", "22P02", "42P01", "P0001"] {
        let e = raise(&db, code).await;
        assert!(!e.is_retryable(), "{code} should be permanent");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_connection_killed_by_the_server_is_replaced() {
    let db = TestDb::with_pool_size(1).await;
    db.store().ping().await.unwrap();
    // The server drops every connection of this database (a failover, an admin).
    admin_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
        db.name
    ))
    .await;
    // Verified recycling notices the dead connection and hands out a fresh one.
    db.store().ping().await.unwrap();
    db.cleanup().await;
}

/// What a log line says about a database error: the SQLSTATE, its name and the server's own
/// message and detail, not "db error".
#[tokio::test]
async fn errors_say_the_sqlstate_and_what_the_server_said() {
    let db = TestDb::new().await;
    let holder = db.client().await;
    holder
        .batch_execute("SELECT pg_advisory_lock(42)")
        .await
        .unwrap();
    let waiter = db.store().pool().get().await.unwrap();
    let e = StoreError::from(
        waiter
            .batch_execute("SET lock_timeout = '50ms'; SELECT pg_advisory_lock(42)")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.to_string(),
        "database: 55P03 lock_not_available: canceling statement due to lock timeout"
    );
    assert!(e.is_retryable());

    waiter
        .batch_execute("CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let e = StoreError::from(
        waiter
            .batch_execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap_err(),
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("database: 23505 unique_violation: duplicate key value violates"),
        "{shown}"
    );
    assert!(
        shown.contains("(detail: Key (k)=(1) already exists.)"),
        "{shown}"
    );
    assert!(!e.is_retryable());
    drop(waiter);
    drop(holder);
    db.cleanup().await;
}
