//! SQLSTATE 25006 (read_only_sql_transaction), what a standby or a demoted primary answers to
//! a write, counts as the database being unreachable: the delivery is held and the gate shut
//! until a writable primary answers, not retried against the delivery limit nor dead-lettered.

use crate::common::db::TestDb;
use revenue_os::store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_is_unreachable_and_the_probe_refuses_it() {
    let db = TestDb::new().await;
    // A write in a read-only transaction: the error a standby gives.
    let client = db.client().await;
    let e = client
        .batch_execute("BEGIN READ ONLY; CREATE TABLE read_only_probe (x int)")
        .await
        .expect_err("a write in a read-only transaction");
    let e = StoreError::from(e);
    assert_eq!(e.sql_state().map(|s| s.code()), Some("25006"), "{e}");
    assert!(e.is_unreachable(), "{e}");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("read_only_sql_transaction"), "{e}");

    // The readiness probe on a server that turned read-only answers 25006 too (so the gate
    // stays shut), and the pool does not keep the connection it found read-only.
    db.store().ping().await.expect("writable at first");
    assert!(db.store().primary().is_some_and(|p| p.ends_with(":5432")));
    client
        .batch_execute(&format!(
            "ROLLBACK; ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name
        ))
        .await
        .expect("make the database read-only");
    let fresh = Store::connect(&db.settings).await.expect("pool");
    let e = fresh.ping().await.expect_err("a read-only server");
    assert_eq!(e.sql_state().map(|s| s.code()), Some("25006"), "{e}");
    assert!(e.is_unreachable(), "{e}");
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            db.name
        ))
        .await
        .expect("writable again");
    // The session that answered read-only keeps its read-only default; the ping works again
    // only because the pool's check before reuse discarded it and opened a new session.
    fresh.ping().await.expect("a new, writable session");
    fresh.pool().close();
    db.cleanup().await;
}
