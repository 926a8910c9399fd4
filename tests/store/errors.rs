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
