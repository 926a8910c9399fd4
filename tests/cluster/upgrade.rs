//! Upgrading a deployment whose queues were declared before `x-quorum-initial-group-size`:
//! RabbitMQ compares that argument on every declare, so the new worker declares such a
//! queue again with the value it has, while any other difference still stops it.

use crate::common::amqp::amqp_url;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use revenue_os::broker::{self, Topology};
use revenue_os::config::Settings;
use revenue_os::contract::catalog::Catalog;

/// The four queues as the previous release declared them (no group size).
async fn declare_as_before(conn: &lapin::Connection, t: &Topology) {
    let ch = conn.create_channel().await.expect("channel");
    for (queue, limit, dlx) in [
        (&t.dead_queue, 1_000_000, None),
        (
            &t.triggers_queue,
            i64::from(t.delivery_limit),
            Some(&t.dead_letter_exchange),
        ),
        (&t.results_dead_queue, 1_000_000, None),
        (
            &t.results_queue,
            i64::from(t.delivery_limit),
            Some(&t.results_dead_letter_exchange),
        ),
    ] {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
        if let Some(x) = dlx {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(x.as_str().into()),
            );
        }
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("old declare");
    }
    let _ = ch.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_declared_without_a_group_size_are_kept_and_other_changes_still_refused() {
    let prefix = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut amqp = Settings::load_from(&[]).expect("settings").amqp;
    amqp.url = amqp_url();
    let catalog = Catalog::embedded().expect("catalog");
    let old = Topology::new(&prefix, &catalog, 10);
    let conn = broker::connect(&amqp, "ha-upgrade").await.expect("connect");
    declare_as_before(&conn, &old).await;

    // The plain declare on one channel is refused, as RabbitMQ compares the argument.
    let ch = conn.create_channel().await.expect("channel");
    let e = old.declare(&ch).await.expect_err("the group size differs");
    assert!(e.to_string().contains("x-quorum-initial-group-size"), "{e}");

    // declare_on keeps each queue's own value, whatever the setting.
    for size in [3, 5] {
        let t = old.clone().with_quorum_group_size(size);
        t.declare_on(&conn)
            .await
            .expect("declared over the old queues");
    }
    // A changed delivery limit still needs an operator.
    let changed = Topology::new(&prefix, &catalog, 11);
    let e = changed
        .declare_on(&conn)
        .await
        .expect_err("a changed argument");
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("x-delivery-limit"), "{e}");

    let ch = conn.create_channel().await.expect("channel");
    old.delete(&ch).await.expect("cleanup");
    let _ = conn.close(200, "done".into()).await;
}
