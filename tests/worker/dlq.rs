//! Replaying dead letters: a trigger for a tenant that does not exist yet is dead-lettered;
//! once the tenant is imported, `dlq replay` sends it back and the cycle completes.

use crate::common::amqp::{
    RunningWorker, TestBroker, WINDOW, close_connections, eventually, import_tenant_as, settings,
    trigger_body,
};
use crate::common::db::TestDb;
use revenue_os::broker::{self, dlq};
use revenue_os::worker::Hooks;
use uuid::Uuid;

#[tokio::test]
async fn a_dead_lettered_trigger_completes_after_the_tenant_is_imported_and_replayed() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    let tenant = Uuid::new_v4();
    b.trigger(tenant, Some(WINDOW), "m-early-bird").await;

    let conn = broker::connect(&s.amqp, &format!("{}/test-dlq", b.prefix))
        .await
        .unwrap();
    let dead = eventually(30, "the trigger in the dead-letter queue", || async {
        let listed = dlq::list(&conn, &b.topology, 10).await.unwrap();
        (!listed.is_empty()).then_some(listed)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id.as_deref(), Some("m-early-bird"));
    assert_eq!(dead[0].reason.as_deref(), Some("unknown_tenant"));
    assert!(
        dead[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(&tenant.to_string())),
        "{:?}",
        dead[0]
    );
    assert_eq!(dead[0].tenant_id, None, "b.trigger sets no tenant header");
    // Listing leaves it queued.
    assert_eq!(dlq::list(&conn, &b.topology, 10).await.unwrap().len(), 1);

    import_tenant_as(&db, tenant).await;

    let report = dlq::replay(&conn, &b.topology, 100).await.unwrap();
    assert_eq!(report.replayed, ["m-early-bird"]);
    assert_eq!(report.kept, 0);

    let client = db.client().await;
    let status: String = eventually(30, "the replayed cycle", || async {
        client
            .query_opt(
                "SELECT status FROM cycles WHERE message_id = 'm-early-bird'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    })
    .await;
    assert_eq!(status, "completed");
    assert!(dlq::list(&conn, &b.topology, 10).await.unwrap().is_empty());

    let _ = conn.close(200, "done".into()).await;
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// `dlq list` names the worker's reason when the worker moved the message, else the broker's
/// (`delivery_limit` for a trigger retried until the limit).
#[tokio::test]
async fn listing_shows_the_workers_reason_else_the_brokers() {
    let b = TestBroker::new().await;
    for (id, headers) in [
        (
            "m-ours",
            vec![
                ("x-revenue-os-reason", "too_large"),
                ("x-revenue-os-detail", "message of 70000 bytes"),
            ],
        ),
        (
            "m-brokers",
            vec![("x-first-death-reason", "delivery_limit")],
        ),
    ] {
        b.publisher
            .publish(&revenue_os::broker::Outgoing {
                exchange: b.topology.dead_letter_exchange.clone(),
                routing_key: "manual.test".into(),
                message_id: id.into(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                body: vec![b'x'; dlq::BODY_PREVIEW_BYTES + 10],
                mandatory: true,
                persistent: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let listed = dlq::list(&b.conn, &b.topology, 10).await.unwrap();
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|d| d.message_id.as_deref() == Some(id))
            .unwrap()
    };
    assert_eq!(by_id("m-ours").reason.as_deref(), Some("too_large"));
    assert_eq!(
        by_id("m-ours").detail.as_deref(),
        Some("message of 70000 bytes")
    );
    assert_eq!(by_id("m-brokers").reason.as_deref(), Some("delivery_limit"));
    assert_eq!(by_id("m-brokers").detail, None);
    assert_eq!(by_id("m-ours").size, dlq::BODY_PREVIEW_BYTES + 10);
    assert_eq!(by_id("m-ours").body.len(), dlq::BODY_PREVIEW_BYTES);
    b.cleanup().await;
}

/// A trigger that came without a message_id has a generated one on its dead-letter copy;
/// `dlq replay` leaves it where it is instead of inventing an idempotency key for it.
#[tokio::test]
async fn a_dead_letter_without_its_own_message_id_is_kept_by_replay() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    let body = serde_json::to_vec(&trigger_body(Uuid::new_v4(), Some(WINDOW))).unwrap();
    b.publish_raw(&body, None).await;
    let listed = eventually(30, "the id-less trigger dead-lettered", || async {
        let l = dlq::list(&b.conn, &b.topology, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(listed[0].reason.as_deref(), Some("no_message_id"));
    assert!(
        listed[0]
            .message_id
            .as_deref()
            .is_some_and(|m| m.starts_with("dead-"))
    );
    let report = dlq::replay(&b.conn, &b.topology, 10).await.unwrap();
    assert!(report.replayed.is_empty(), "{report:?}");
    assert_eq!(report.kept, 1);
    assert_eq!(dlq::list(&b.conn, &b.topology, 10).await.unwrap().len(), 1);

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// The dead queue carries its own (practically unlimited) delivery limit, so listing it again
/// and again never drops a dead letter (RabbitMQ 4 would default the limit to 20).
#[tokio::test]
async fn listing_the_dead_queue_many_times_keeps_the_dead_letter() {
    let b = TestBroker::new().await;
    b.publisher
        .publish(&revenue_os::broker::Outgoing {
            exchange: b.topology.dead_letter_exchange.clone(),
            routing_key: "manual.test".into(),
            message_id: "m-dead".into(),
            body: b"{}".to_vec(),
            mandatory: true,
            persistent: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..30 {
        let listed = dlq::list(&b.conn, &b.topology, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].message_id.as_deref(), Some("m-dead"));
    }

    let dead = b.topology.dead_queue.clone();
    let args = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_queues",
                "--no-table-headers",
                "name",
                "arguments",
            ])
            .output()
            .expect("rabbitmqctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split('\t').next() == Some(dead.as_str()))
            .map(str::to_owned)
    })
    .await
    .unwrap()
    .expect("the dead queue is listed");
    assert!(args.contains("x-delivery-limit"), "{args}");
    assert!(args.contains("1000000"), "{args}");

    b.cleanup().await;
}

/// The console's reader: one kept connection for many peeks, the letter left in place, and
/// a fresh connection after the broker closed the old one.
#[tokio::test]
async fn the_dead_queue_reader_keeps_one_connection_and_reopens_a_closed_one() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let s = settings(&b.prefix, &db);
    b.publisher
        .publish(&broker::Outgoing {
            exchange: b.topology.dead_letter_exchange.clone(),
            routing_key: "manual.test".into(),
            message_id: "m-peeked".into(),
            body: b"{}".to_vec(),
            mandatory: true,
            persistent: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let reader = broker::DeadQueueReader::new(s.amqp.clone(), b.topology.clone());
    let within = std::time::Duration::from_secs(5);
    for _ in 0..5 {
        let listed = reader.peek(10, within).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].message_id.as_deref(), Some("m-peeked"));
    }
    let console_conns = format!("{}/console/", b.prefix);
    assert_eq!(
        close_connections(&console_conns).await,
        1,
        "one kept connection"
    );
    let listed = eventually(10, "a peek on a new connection", || async {
        reader.peek(10, within).await.ok()
    })
    .await;
    assert_eq!(listed.len(), 1);
    reader.close().await;
    b.cleanup().await;
}
