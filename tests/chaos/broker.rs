//! The broker link fails: a broker that accepts TCP but never speaks, and a restart.

use crate::common::amqp::{TestBroker, eventually, import_tenants, wait_for_total};
use crate::common::db::TestDb;
use crate::harness::{Links, MQ, Worker, addr, delivered_ids, queue_depth, record, tally};
use crate::relay::{Mode, Relay};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_broker_gives_logged_retries() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 1).await;
    let actions = b.collect_actions().await;
    let mq = Relay::start(addr(MQ)).await;
    mq.set(Mode::Blackhole);
    let w = Worker::spawn(
        "wedged",
        &b,
        &db,
        Links {
            pg: None,
            mq: Some(&mq),
        },
        &[],
    );
    eventually(
        60,
        "three logged attempts against the wedged broker",
        || async {
            (w.count("broker session failed to open") >= 3 && mq.accepted() >= 3).then_some(())
        },
    )
    .await;
    assert!(
        w.lines()
            .iter()
            .any(|l| l.contains("broker connect and handshake")),
        "the retries say what timed out"
    );
    assert_ne!(
        w.probe("/readyz").await,
        Some(200),
        "not ready without a broker"
    );
    let attempts = w.count("broker session failed to open");
    mq.set(Mode::Pass);
    w.ready(30).await;
    let id = format!("wedged-{}", tenants[0]);
    b.trigger(tenants[0], Some(crate::common::amqp::WINDOW), &id)
        .await;
    eventually(30, "the trigger's cycle", || async {
        (db.count("SELECT count(*) FROM cycles").await >= 1).then_some(())
    })
    .await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, n, 30, "every action delivered").await;
    // A confirmed row is marked published just after its copy arrives: wait for the mark.
    crate::common::amqp::wait_outbox_drained(&db, 30).await;
    let dead = queue_depth(&b, &b.topology.dead_queue).await;
    let t = tally(&db, &[id], &delivered_ids(&actions), dead).await;
    record(
        "broker_wedged",
        "RabbitMQ accepts TCP, never speaks",
        &t,
        &format!("{attempts} logged attempts of 3 s each, then connected"),
    );
    assert!(t.clean(), "{t:?}");
    w.stop();
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_worker_recovers_within_5_s() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 4).await;
    let actions = b.collect_actions().await;
    let mq = Relay::start(addr(MQ)).await;
    let w = Worker::spawn(
        "restart",
        &b,
        &db,
        Links {
            pg: None,
            mq: Some(&mq),
        },
        &[],
    );
    w.ready(30).await;

    // Down long enough for the old backoff to have grown to its 15 s ceiling's neighbourhood.
    mq.set(Mode::Down);
    let mut ids = vec![];
    for t in &tenants {
        let id = format!("restart-{t}");
        b.trigger(*t, Some(crate::common::amqp::WINDOW), &id).await;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_ne!(
        w.probe("/readyz").await,
        Some(200),
        "not ready while the broker is down"
    );
    let back = Instant::now();
    mq.set(Mode::Pass);
    let total = ids.len() as i64;
    eventually(30, "every trigger's cycle after the restart", || async {
        (db.count("SELECT count(*) FROM cycles").await >= total).then_some(())
    })
    .await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, n, 30, "every action delivered").await;
    let recovered = back.elapsed();
    crate::common::amqp::wait_outbox_drained(&db, 30).await;
    let dead = queue_depth(&b, &b.topology.dead_queue).await;
    let t = tally(&db, &ids, &delivered_ids(&actions), dead).await;
    record(
        "broker_restart",
        "RabbitMQ down 20 s (connections reset, port closed)",
        &t,
        &format!(
            "back to work {:.1} s after the broker returned",
            recovered.as_secs_f64()
        ),
    );
    assert!(t.clean(), "{t:?}");
    // The bar: the backoff resets when the broker is reachable, the relay sweeps at
    // once; queued triggers are processed and their actions out within 5 s.
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    w.stop();
    b.cleanup().await;
    db.cleanup().await;
}
