//! Periodic services keep their own clocks: with the watchdog off, held actions still expire.

use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, eventually, import_tenant, settings};
use crate::common::db::TestDb;
use crate::common::hold_routing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_action_past_its_ttl_expires_with_the_watchdog_off() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    hold_routing(&db, tenant).await;
    let mut s = settings(&b.prefix, &db);
    s.watchdog.interval_secs = 0;
    s.approval.ttl_hours = 0;
    s.approval.sweep_secs = 1;
    let w = RunningWorker::start(s, &db, Default::default());
    b.trigger(tenant, Some(WINDOW), "m-expire-no-watchdog")
        .await;
    eventually(60, "the held action expired", || async {
        (db.count("SELECT count(*) FROM actions WHERE status = 'expired'")
            .await
            > 0)
        .then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM actions WHERE status = 'pending_approval'")
            .await,
        0
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// The retention service deletes published outbox rows past `retention.outbox_days`, in
/// batches, and never an unpublished row however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_published_outbox_rows_and_keeps_the_rest() {
    use revenue_os::worker::periodic::{Periodic, Retention};
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Default::default());
    // Three cycle events (one cycle, then two skipped as too recent): the actions are their
    // own entries (V27), and the outbox keeps each cycle's event.
    for id in ["m-retention-1", "m-retention-2", "m-retention-3"] {
        b.trigger(tenant, Some(WINDOW), id).await;
    }
    let published = eventually(60, "the cycles' outbox rows", || async {
        let n = db.count("SELECT count(*) FROM outbox").await;
        (n >= 3).then_some(n)
    })
    .await;
    w.stop().await;
    // All but the newest row published ten days ago, the newest today, and the oldest never
    // published at all.
    db.client()
        .await
        .batch_execute(
            "UPDATE outbox SET published_at = now() - interval '10 days'
              WHERE id < (SELECT max(id) FROM outbox);
             UPDATE outbox SET published_at = now() WHERE id = (SELECT max(id) FROM outbox);
             UPDATE outbox SET published_at = NULL, created_at = now() - interval '30 days'
              WHERE id = (SELECT min(id) FROM outbox);",
        )
        .await
        .unwrap();
    let service = Retention {
        store: db.store().clone(),
        clock: revenue_os::clock::Clock::system(),
        outbox_days: 7,
        history_days: 0,
        data_days: 0,
        batch: 2,
        every: std::time::Duration::from_secs(600),
        deadline: std::time::Duration::from_secs(30),
    };
    service.run_once().await.unwrap();
    let left: Vec<(bool, bool)> = db
        .client()
        .await
        .query(
            "SELECT published_at IS NULL, published_at > now() - interval '1 day' FROM outbox
             ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(false)))
        .collect();
    assert_eq!(
        left,
        vec![(true, false), (false, true)],
        "of {published} rows"
    );
    // Nothing more to delete: a second pass changes nothing.
    service.run_once().await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM outbox").await, 2);
    b.cleanup().await;
    db.cleanup().await;
}
