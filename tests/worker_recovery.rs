//! Broker connections closed under load (`rabbitmqctl close_connection` on this worker's
//! connections only, found by the connection name carrying the test's unique prefix).

mod common;

use common::amqp::{
    RunningWorker, TestBroker, WINDOW, close_connections, eventually, import_tenant, settings,
};
use common::db::TestDb;
use revenue_os::worker::Hooks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_recovers_from_closed_connections_and_loses_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let mut tenants = vec![];
    for _ in 0..6 {
        tenants.push(import_tenant(&db).await);
    }
    let actions = b.collect_actions().await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s, &db, Hooks::default());

    let mut ids = vec![];
    // Two rounds per tenant before the cut (the second is a skipped cycle), two after.
    for round in 0..2 {
        for t in &tenants {
            let id = format!("m-{round}-{t}");
            b.trigger(*t, Some(WINDOW), &id).await;
            ids.push(id);
        }
    }
    // Cut while cycles are running.
    eventually(20, "some cycles", || async {
        let n: i64 = db
            .client()
            .await
            .query_one("SELECT count(*) FROM cycles", &[])
            .await
            .unwrap()
            .get(0);
        (n >= 1).then_some(())
    })
    .await;
    let closed = close_connections(&w.name).await;
    assert!(closed >= 1, "closed {closed} connections named {}", w.name);
    for round in 2..4 {
        for t in &tenants {
            let id = format!("m-{round}-{t}");
            b.trigger(*t, Some(WINDOW), &id).await;
            ids.push(id);
        }
    }
    // Again, as soon as the worker is back (it reconnects under the same name).
    let name = w.name.clone();
    eventually(30, "the worker reconnected and was cut again", || {
        let name = name.clone();
        async move { (close_connections(&name).await >= 1).then_some(()) }
    })
    .await;

    let total = ids.len() as i64;
    eventually(60, "a cycle per trigger", || async {
        let n: i64 = db
            .client()
            .await
            .query_one("SELECT count(*) FROM cycles", &[])
            .await
            .unwrap()
            .get(0);
        (n >= total).then_some(())
    })
    .await;
    let client = db.client().await;
    for id in &ids {
        let n: i64 = client
            .query_one("SELECT count(*) FROM cycles WHERE message_id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{id}");
    }
    let completed: i64 = client
        .query_one(
            "SELECT count(*) FROM cycles WHERE status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        completed,
        tenants.len() as i64,
        "one completed cycle per tenant"
    );

    let rows: Vec<(String, String)> = client
        .query("SELECT cycle_id::text, action_id FROM actions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let n = rows.len();
    eventually(60, "every action delivered", || {
        let a = actions.clone();
        async move { (a.values().map(|c| c.snapshot().len()).sum::<usize>() >= n).then_some(()) }
    })
    .await;
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
    eventually(20, "outbox drained", || async {
        let n: i64 = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n == 0).then_some(())
    })
    .await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
