//! kill -9 of a worker in the middle of a batch of cycles: the batch's transaction holds
//! several tenants' locks and has written some of its cycles when the process dies. Nothing
//! of it is committed, every trigger of it is redelivered, and each gets exactly one cycle.

use crate::common::amqp::{TestBroker, eventually, import_tenants};
use crate::common::db::TestDb;
use crate::harness::{Links, PG, Worker, addr, record, settle_and_tally};
use crate::relay::{Mode, Relay};
use std::time::Duration;

/// A backend of this database inside a batch: advisory locks on at least two tenants and two
/// messages, and past its locks into the cycles' inserts.
async fn mid_batch(db: &TestDb) -> Option<(i32, i64)> {
    let c = db.client().await;
    let row = c
        .query_opt(
            "SELECT l.pid, count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = $1
               AND a.query ILIKE 'INSERT INTO%'
             GROUP BY l.pid HAVING count(*) >= 4 LIMIT 1",
            &[&db.name],
        )
        .await
        .ok()??;
    Some((row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 24).await;
    let actions = b.collect_actions().await;
    // Slow database link: each batch's statements take long enough to be caught mid-way.
    let pg = Relay::start(addr(PG)).await;
    pg.set(Mode::Slow(Duration::from_millis(15)));
    // Every trigger waits in the queue before the worker starts: it takes them in batches.
    let mut ids = vec![];
    for t in &tenants {
        let id = format!("batch-{t}");
        b.trigger(*t, Some(crate::common::amqp::WINDOW), &id).await;
        ids.push(id);
    }
    let batch_env = [("REVENUE_OS__WORKER__CYCLE_BATCH", "8")];
    let spawn = || {
        Worker::spawn(
            "batch",
            &b,
            &db,
            Links {
                pg: Some(&pg),
                mq: None,
            },
            &batch_env,
        )
    };
    let mut w = spawn();
    let (pid, locks) = eventually(60, "a backend in the middle of a batch", || async {
        mid_batch(&db).await
    })
    .await;
    let before = db.count("SELECT count(*) FROM cycles").await;
    w.kill9();
    // The dead worker's backend rolls back when its connection closes.
    eventually(30, "the killed batch's backend gone", || async {
        let c = db.client().await;
        let alive: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(1);
        (alive == 0).then_some(())
    })
    .await;
    pg.set(Mode::Pass);
    let w = spawn();
    w.ready(30).await;
    let t = settle_and_tally(&db, &b, &actions, &ids, 120).await;
    record(
        "batch_kill",
        "kill -9 of the worker inside a batch of cycles",
        &t,
        &format!(
            "killed while its backend held {locks} advisory locks (batch of up to 8); \
             {before} cycles committed before the kill"
        ),
    );
    assert!(t.clean(), "{t:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM cycles").await,
        ids.len() as i64,
        "one cycle per trigger"
    );
    w.stop();
    b.cleanup().await;
    db.cleanup().await;
}
