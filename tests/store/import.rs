//! `import`: a bad document is rejected with the kernel's violations and writes nothing; a
//! database failure mid-way rolls everything back.

use crate::common::db::TestDb;
use crate::common::*;
use revenue_os::contract::*;
use revenue_os::store::StoreError;
use revenue_os::{Error, app};

const TENANT_TABLES: &[&str] = &[
    "tenants",
    "targets",
    "guardrails",
    "tenant_config",
    "metric_snapshots",
    "revenue_events",
    "campaigns",
    "opportunities",
    "action_results",
    "cycles",
    "actions",
    "outbox",
];

async fn row_counts(db: &TestDb) -> Vec<i64> {
    let c = db.client().await;
    let mut out = Vec::new();
    for t in TENANT_TABLES {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        out.push(n);
    }
    out
}

#[tokio::test]
async fn invalid_documents_give_the_kernels_violations_and_write_nothing() {
    let db = TestDb::new().await;
    let cat = catalog();
    let now = fixture_now();
    let mut settings = revenue_os::config::Settings::load_from(&[]).unwrap();
    settings.database = db.settings.clone();
    let mut checked = 0;
    for entry in std::fs::read_dir(fixture_path("invalid")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "cases.json" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        // Structural problems are caught by decoding, before the store is involved.
        if decode_input(&bytes).is_err() {
            continue;
        }
        let kernel_err = parse_input(&bytes, &cat, now).unwrap_err();
        let before = row_counts(&db).await;
        let Err(Error::Kernel(import_err)) = app::import(&settings, &cat, &bytes).await else {
            // Valid apart from a clock rule (trigger age) or INSUFFICIENT_DATA: import accepts
            // content-valid documents, so only those two codes may get here.
            assert!(
                kernel_err.code == ErrorCode::InsufficientData
                    || kernel_err
                        .violations()
                        .iter()
                        .all(|v| v.path == "trigger.triggered_at"),
                "{name}: import accepted a document the kernel rejects: {kernel_err}"
            );
            continue;
        };
        assert_eq!(import_err.code, ErrorCode::InvalidInput, "{name}");
        let without_clock: Vec<Violation> = kernel_err
            .violations()
            .into_iter()
            .filter(|v| v.path != "trigger.triggered_at" || !v.problem.contains("hours"))
            .collect();
        assert_eq!(import_err.violations(), without_clock, "{name}");
        assert_eq!(row_counts(&db).await, before, "{name} wrote rows");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures exercised");
    db.cleanup().await;
}

#[tokio::test]
async fn a_failure_mid_transaction_rolls_everything_back() {
    let db = TestDb::new().await;
    let cat = catalog();
    // Valid for the contract but refused by the database (text cannot hold a NUL byte), after
    // the tenant, targets and metrics were already written in the transaction.
    let mut input = fixture(DEMAND_BOUND);
    input.opportunities[5].stage = "bad\u{0}stage".into();
    let err = db.store().import(&input, &cat).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(row_counts(&db).await.iter().all(|n| *n == 0));

    // And the same document without the bad row imports.
    input.opportunities[5].stage = "proposal".into();
    db.store().import(&input, &cat).await.unwrap();
    assert!(row_counts(&db).await[0] == 1);
    db.cleanup().await;
}
