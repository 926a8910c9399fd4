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
