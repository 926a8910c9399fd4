//! The confirm-mode publishing channel failing on its own, while the connection and the
//! consumer stay up: the worker must notice and rebuild its session.

use crate::common::amqp::{
    RunningWorker, TestBroker, WINDOW, eventually, import_tenants, settings, wait_for_total,
    wait_outbox_drained,
};
use crate::common::db::TestDb;
use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions};
use lapin::types::FieldTable;
use revenue_os::contract::Subsystem;
use revenue_os::worker::Hooks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_deleted_exchange_does_not_stop_publishing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 3).await;
    let actions = b.collect_actions().await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    // A first cycle shows the session is up (and the topology declared).
    b.trigger(tenants[0], Some(WINDOW), "m-warmup").await;
    events.wait_for(1, 30).await;
    let per_cycle = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, per_cycle, 30, "the first cycle's actions").await;

    // The example tenant has a crm action: publishing it now gets a channel-level 404.
    let crm = b.topology.action_exchange(Subsystem::Crm);
    b.ch.exchange_delete(crm.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    b.trigger(tenants[1], Some(WINDOW), "m-404").await;
    eventually(30, "the crm row failed", || async {
        (db.count(
            "SELECT count(*) FROM outbox_messages o JOIN cycles c USING (cycle_id)
             WHERE c.message_id = 'm-404' AND o.exchange LIKE '%.crm' AND o.attempts >= 1",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    // The operator restores the exchange and its binding.
    b.ch.exchange_declare(
        crm.as_str().into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    b.ch.queue_bind(
        actions[&crm].queue.as_str().into(),
        crm.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    wait_for_total(&actions, 2 * per_cycle, 60, "the second cycle's actions").await;
    events.wait_for(2, 30).await;

    // And later cycles are published as usual.
    b.trigger(tenants[2], Some(WINDOW), "m-later").await;
    wait_for_total(&actions, 3 * per_cycle, 30, "the third cycle's actions").await;
    events.wait_for(3, 30).await;
    wait_outbox_drained(&db, 20).await;
    // Messages in flight when the channel closed may come twice (executors dedupe on
    // message_id); none is missing.
    let ids: std::collections::HashSet<String> = actions
        .values()
        .flat_map(|c| c.snapshot())
        .filter_map(|m| m.message_id)
        .collect();
    assert_eq!(ids.len(), 3 * per_cycle);
    assert_eq!(
        db.count(
            "SELECT count(DISTINCT message_id) FROM outbox_messages WHERE action_id IS NOT NULL"
        )
        .await,
        ids.len() as i64
    );

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// Rows a previous process left pending are swept as soon as the new worker's session is up,
/// not one or two (here very long) sweep intervals later.
#[tokio::test]
async fn start_up_sweep_waits_for_the_session_then_publishes_leftovers() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenants(&db, 1).await[0];
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let mut s = settings(&b.prefix, &db);

    // No queue on the action exchanges yet: every action is returned and stays pending.
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    b.trigger(tenant, Some(WINDOW), "m-leftover").await;
    events.wait_for(1, 30).await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    w.stop().await;
    let pending =
        "SELECT count(*) FROM outbox_messages WHERE action_id IS NOT NULL AND published_at IS NULL";
    assert_eq!(db.count(pending).await as usize, n);

    let actions = b.collect_actions().await;
    s.worker.outbox_sweep_secs = 3600;
    let w = RunningWorker::start(s, &db, Hooks::default());
    wait_for_total(&actions, n, 30, "the leftover actions").await;
    eventually(10, "leftovers marked published", || async {
        (db.count(pending).await == 0).then_some(())
    })
    .await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
