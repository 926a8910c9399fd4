//! Hostile input: oversized bodies, non-JSON content types, long strings and huge windows are
//! refused with their reason before they cost anything, on the trigger and the results
//! queues; `reply_to` cannot aim the worker at someone else's queue.

use crate::common::amqp::{
    Received, RunningWorker, TestBroker, WINDOW, eventually, import_tenant, settings, trigger_body,
};
use crate::common::db::TestDb;
use revenue_os::broker::{Outgoing, TriggerClient};
use revenue_os::contract::TriggerMessage;
use revenue_os::worker::Hooks;
use std::time::Duration;
use uuid::Uuid;

/// The dead letter with this message id, and its reason: the worker's `x-revenue-os-reason`
/// on a copy, or `too_large` for the one kind it rejects unread (the broker's
/// `x-first-death-reason: rejected`), as `dlq list` reads them.
fn reason_of<'a>(got: &'a [Received], id: &str) -> (&'a Received, &'a str) {
    let m = got
        .iter()
        .find(|m| m.message_id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("{id} not dead-lettered: {got:?}"));
    let reason = match m.headers.get("x-revenue-os-reason") {
        Some(r) => r.as_str(),
        None if m.headers.get("x-first-death-reason").map(String::as_str) == Some("rejected") => {
            revenue_os::broker::dlq::UNREAD
        }
        None => panic!("{id} has no reason: {:?}", m.headers),
    };
    (m, reason)
}

/// A valid trigger body for `tenant` padded with white space to exactly `size` bytes.
fn padded_trigger(tenant: Uuid, size: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(&trigger_body(tenant, Some(WINDOW))).unwrap();
    assert!(body.len() <= size);
    body.resize(size, b' ');
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_non_json_and_long_source_triggers_are_dead_lettered_with_their_reason() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let s = settings(&b.prefix, &db);
    let max = s.amqp.max_message_bytes;
    assert_eq!(max, 65536, "the default");
    let w = RunningWorker::start(s, &db, Hooks::default());
    let triggers = b.topology.triggers_exchange.clone();

    let big = padded_trigger(tenant, max + 1);
    b.publish_raw_to(&triggers, &big, Some("m-big"), Some("application/json"))
        .await;
    let body = serde_json::to_vec(&trigger_body(tenant, Some(WINDOW))).unwrap();
    b.publish_raw_to(&triggers, &body, Some("m-text"), Some("text/plain"))
        .await;
    let mut long = trigger_body(tenant, Some(WINDOW));
    long["trigger"]["source"] = serde_json::json!("s".repeat(201));
    let long = serde_json::to_vec(&long).unwrap();
    b.publish_raw_to(&triggers, &long, Some("m-long-source"), None)
        .await;
    // At the limit exactly, without a content type: accepted, and the cycle runs.
    let at_limit = padded_trigger(tenant, max);
    b.publish_raw_to(&triggers, &at_limit, Some("m-at-limit"), None)
        .await;

    let got = dead.wait_for(3, 30).await;
    let (m, reason) = reason_of(&got, "m-big");
    assert_eq!(reason, "too_large");
    // Rejected unread: the broker dead-lettered the original, whole.
    assert_eq!(m.body, big, "the body is kept as it came");
    let (m, reason) = reason_of(&got, "m-text");
    assert_eq!(reason, "malformed");
    assert!(m.headers["x-revenue-os-detail"].contains("text/plain"));
    assert_eq!(m.headers["x-original-content-type"], "text/plain");
    let (m, reason) = reason_of(&got, "m-long-source");
    assert_eq!(reason, "malformed");
    assert!(m.headers["x-revenue-os-detail"].contains("trigger.source is 201 bytes"));

    eventually(30, "the cycle of the trigger at the limit", || async {
        (db.count("SELECT count(*) FROM cycles WHERE message_id = 'm-at-limit'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 1);
    assert_eq!(dead.snapshot().len(), 3, "nothing else dead-lettered");

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_past_the_limit_fails_the_cycle_with_invalid_input() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    b.trigger(tenant, Some(("0001-01-01", "9999-12-31")), "m-forever")
        .await;
    let ev = events.wait_for(1, 30).await;
    assert_eq!(ev[0].routing_key, format!("failed.{tenant}"));
    let body = ev[0].json();
    assert_eq!(body["code"], "INVALID_INPUT", "{body}");
    let violations = body["details"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{body}");
    assert_eq!(violations[0]["path"], "analysis_window");
    assert!(
        violations[0]["problem"]
            .as_str()
            .unwrap()
            .contains("at most 400"),
        "{body}"
    );
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error_code FROM cycles WHERE message_id = 'm-forever'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "INVALID_INPUT");
    assert_eq!(db.count("SELECT count(*) FROM actions").await, 0);

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_non_json_reports_are_dead_lettered_with_their_reason() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let dead = b.consume_queue(&b.topology.results_dead_queue).await;
    let mut s = settings(&b.prefix, &db);
    s.amqp.max_message_bytes = 1024;
    let w = RunningWorker::start(s, &db, Hooks::default());
    let results = b.topology.results_exchange.clone();

    b.publish_raw_to(&results, &[b' '; 1025], Some("r-big"), None)
        .await;
    b.publish_raw_to(&results, b"{}", Some("r-xml"), Some("application/xml"))
        .await;
    let got = dead.wait_for(2, 30).await;
    let (m, reason) = reason_of(&got, "r-big");
    assert_eq!(reason, "too_large");
    assert_eq!(m.body.len(), 1025, "kept whole by the broker");
    assert_eq!(reason_of(&got, "r-xml").1, "not_cloudevent");
    assert_eq!(db.count("SELECT count(*) FROM action_reports").await, 0);

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// A trigger for `tenant` whose `reply_to` names `queue`.
async fn publish_with_reply_to(b: &TestBroker, tenant: Uuid, id: &str, queue: &str) {
    let body = serde_json::to_vec(&trigger_body(tenant, Some(WINDOW))).unwrap();
    let out = Outgoing {
        exchange: b.topology.triggers_exchange.clone(),
        routing_key: format!("manual.{tenant}"),
        message_id: id.to_owned(),
        body,
        mandatory: true,
        persistent: true,
        reply_to: Some(queue.to_owned()),
        ..Default::default()
    };
    b.publisher.publish(&out).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_naming_a_foreign_queue_gets_nothing_while_private_inboxes_do() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    // Somebody else's queue: bound to nothing we publish, reachable by name through the
    // default exchange.
    let foreign = b.collect(&b.topology.cycles_exchange, "nothing.ever").await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());

    let first = import_tenant(&db).await;
    publish_with_reply_to(&b, first, "m-foreign", &foreign.queue).await;
    let ev = events.wait_for(1, 30).await;
    assert_eq!(ev[0].routing_key, format!("completed.{first}"));

    // `revenue-os trigger --wait`: its server-named private inbox still gets the result.
    let second = import_tenant(&db).await;
    let client = TriggerClient::connect(&s.amqp, b.topology.clone())
        .await
        .unwrap();
    let msg: TriggerMessage = serde_json::from_value(trigger_body(second, Some(WINDOW))).unwrap();
    let reply = client
        .send_and_wait(&msg, "m-private", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.status, "completed", "{}", reply.body);
    client.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(foreign.snapshot().is_empty(), "{:?}", foreign.snapshot());
    w.stop().await;

    // Named in amqp.reply_to_allow, the same queue is answered.
    let mut allowed = s.clone();
    allowed.amqp.reply_to_allow = vec![foreign.queue.clone()];
    let w = RunningWorker::start(allowed, &db, Hooks::default());
    let third = import_tenant(&db).await;
    publish_with_reply_to(&b, third, "m-allowed", &foreign.queue).await;
    let got = foreign.wait_for(1, 30).await;
    assert_eq!(got[0].message_id.as_deref(), Some("m-allowed:reply"));
    assert_eq!(got[0].headers["status"], "completed");

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
