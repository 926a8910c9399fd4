//! The README's first command, `revenue-os demo`, end to end on its own database and prefix.

use crate::common::amqp::TestBroker;
use crate::common::db::TestDb;
use revenue_os::catalog::Catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_turns_a_trigger_into_published_guarded_actions() {
    let db = TestDb::unmigrated(4).await;
    let broker = TestBroker::new().await;
    let settings = crate::common::amqp::settings(&broker.prefix, &db);
    let document = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/demand_bound.json"
    ))
    .unwrap();
    let mut lines = Vec::new();
    let result = revenue_os::demo::run(settings, Catalog::embedded().unwrap(), &document, |l| {
        lines.push(l.to_owned())
    })
    .await;
    broker.cleanup().await;
    let report = lines.join("\n");
    result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert!(report.contains("completed: binding constraint"), "{report}");
    assert!(report.contains("why: "), "{report}");
    assert!(report.contains("cycle event on"), "{report}");
    db.cleanup().await;
}
