//! Broker connections closed under load (`rabbitmqctl close_connection` on this worker's
//! connections only, found by the connection name carrying the test's unique prefix).

use crate::common::amqp::{
    RunningWorker, TestBroker, assert_one_cycle_each, close_connections, eventually,
    import_tenants, settings, wait_for_total, wait_outbox_drained,
};
use crate::common::db::TestDb;
use revenue_os::worker::Hooks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_recovers_from_closed_connections_and_loses_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 6).await;
    let actions = b.collect_actions().await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s, &db, Hooks::default());

    // Two rounds per tenant before the cut (the second is a skipped cycle), two after.
    let mut ids = b.trigger_rounds(&tenants, 0..2).await;
    // Cut while cycles are running.
    eventually(20, "some cycles", || async {
        (db.count("SELECT count(*) FROM cycles").await >= 1).then_some(())
    })
    .await;
    let closed = close_connections(&w.name).await;
    assert!(closed >= 1, "closed {closed} connections named {}", w.name);
    ids.extend(b.trigger_rounds(&tenants, 2..4).await);
    // Again, as soon as the worker is back (it reconnects under the same name).
    let name = w.name.clone();
    eventually(30, "the worker reconnected and was cut again", || {
        let name = name.clone();
        async move { (close_connections(&name).await >= 1).then_some(()) }
    })
    .await;

    let total = ids.len() as i64;
    eventually(60, "a cycle per trigger", || async {
        (db.count("SELECT count(*) FROM cycles").await >= total).then_some(())
    })
    .await;
    assert_one_cycle_each(&db, &ids).await;
    let completed = db
        .count("SELECT count(*) FROM cycles WHERE status = 'completed'")
        .await;
    assert_eq!(
        completed,
        tenants.len() as i64,
        "one completed cycle per tenant"
    );

    let rows: Vec<(String, String)> = db
        .client()
        .await
        .query("SELECT cycle_id::text, action_id FROM actions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let n = rows.len();
    wait_for_total(&actions, n, 60, "every action delivered").await;
    let got: std::collections::HashSet<String> = actions
        .values()
        .flat_map(|c| c.snapshot())
        .filter_map(|m| m.message_id)
        .collect();
    for (cycle, action) in &rows {
        assert!(
            got.contains(&format!("{cycle}:{action}")),
            "{cycle}:{action} missing"
        );
    }
    wait_outbox_drained(&db, 20).await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
