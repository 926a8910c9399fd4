//! Migrations: applied once, a no-op the second time, safe when run concurrently.

use crate::common::db::TestDb;
use crate::common::*;

/// The versioned SQL files the binary embeds.
fn migration_files() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count() as i64
}

async fn snapshot(db: &TestDb) -> (i64, i64, Option<chrono::DateTime<chrono::Utc>>) {
    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM refinery_schema_history),
                    (SELECT count(*) FROM metric_dictionary),
                    (SELECT max(synced_at) FROM metric_dictionary)",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let db = TestDb::new().await; // first run
    let before = snapshot(&db).await;
    assert!(before.0 >= 1);
    assert_eq!(before.1 as usize, catalog().metrics().count());
    db.store().migrate().await.unwrap();
    assert_eq!(snapshot(&db).await, before);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_once() {
    let db = TestDb::unmigrated(8).await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let s = db.store().clone();
            tokio::spawn(async move { s.migrate().await })
        })
        .collect();
    for r in runs {
        r.await.unwrap().unwrap();
    }
    let (applied, metrics, _) = snapshot(&db).await;
    assert_eq!(applied, migration_files());
    assert!(metrics > 0);
    db.store().ping().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    // The defaults, pointed at a port where nothing listens.
    let settings = revenue_os::config::DatabaseSettings {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        pool_size: 1,
        connect_timeout_secs: 1,
        migrate_on_start: false,
        ..revenue_os::config::Settings::load_from(&[])
            .unwrap()
            .database
    };
    let store = revenue_os::store::Store::connect(&settings).await.unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // The log line says why, not just "db error".
    let shown = err.to_string();
    assert!(
        shown.starts_with("database: error connecting to server: "),
        "{shown}"
    );
    assert!(shown.to_lowercase().contains("refused"), "{shown}");
}
