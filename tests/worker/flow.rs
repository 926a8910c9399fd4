//! The worker end to end against the real RabbitMQ and PostgreSQL: each test has its own
//! database and exchange/queue prefix and deletes them at the end.

use crate::common::amqp::{
    Collector, RunningWorker, TestBroker, WINDOW, eventually, import_tenant, received_total,
    settings, trigger_body, wait_for_total,
};
use crate::common::db::TestDb;
use revenue_os::broker::TriggerClient;
use revenue_os::contract::{ActionMessage, TriggerMessage};
use revenue_os::worker::{HookAction, Hooks};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// One row of `actions`.
#[derive(Debug, Clone, PartialEq)]
struct ActionRow {
    cycle_id: Uuid,
    action_id: String,
    owner_subsystem: String,
    kind: String,
    status: String,
    action: serde_json::Value,
}

async fn action_rows(db: &TestDb) -> Vec<ActionRow> {
    db.client()
        .await
        .query(
            "SELECT cycle_id, action_id, owner_subsystem, type, status, action FROM actions
             ORDER BY cycle_id, priority",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ActionRow {
            cycle_id: r.get(0),
            action_id: r.get(1),
            owner_subsystem: r.get(2),
            kind: r.get(3),
            status: r.get(4),
            action: r.get(5),
        })
        .collect()
}

async fn cycles_of(db: &TestDb, message_id: &str) -> Vec<(Uuid, String)> {
    db.client()
        .await
        .query(
            "SELECT cycle_id, status FROM cycles WHERE message_id = $1",
            &[&message_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A database, a broker prefix, the example tenant imported and a collector on the cycle events:
/// what most tests here start from.
async fn setup() -> (TestDb, TestBroker, Uuid, Collector) {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    (db, b, tenant, events)
}

/// Every action row arrived exactly once on its subsystem's exchange with the agreed id,
/// routing key, headers and body.
fn assert_actions_delivered(
    b: &TestBroker,
    rows: &[ActionRow],
    tenant: Uuid,
    actions: &BTreeMap<String, Collector>,
) {
    let got: BTreeMap<_, _> = actions
        .iter()
        .map(|(k, c)| (k.clone(), c.snapshot()))
        .collect();
    let mut seen = 0;
    for row in rows {
        let exchange = format!("{}.actions.{}", b.prefix, row.owner_subsystem);
        let id = format!("{}:{}", row.cycle_id, row.action_id);
        let hits: Vec<_> = got[&exchange]
            .iter()
            .filter(|m| m.message_id.as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(hits.len(), 1, "{id} delivered {} times", hits.len());
        let m = hits[0];
        assert_eq!(m.routing_key, format!("{}.{tenant}", row.kind));
        assert!(m.persistent);
        assert_eq!(m.headers["tenant_id"], tenant.to_string());
        assert_eq!(m.headers["cycle_id"], row.cycle_id.to_string());
        assert_eq!(m.headers["action_id"], row.action_id);
        assert_eq!(m.headers["version"], "revenue_os_v1");
        let body: ActionMessage = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body.cycle_id, row.cycle_id.to_string());
        assert_eq!(body.tenant_id, tenant.to_string());
        assert_eq!(serde_json::to_value(&body.action).unwrap(), row.action);
        seen += 1;
    }
    let total: usize = got.values().map(Vec::len).sum();
    assert_eq!(total, seen, "no other action messages");
}

#[tokio::test]
async fn happy_path_every_action_on_its_exchange_and_the_cycle_event() {
    let (db, b, tenant, events) = setup().await;
    let actions = b.collect_actions().await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());

    // Publish through the client a scheduler or `revenue-os trigger --wait` uses.
    let client = TriggerClient::connect(&s.amqp, b.topology.clone())
        .await
        .unwrap();
    let msg: TriggerMessage = serde_json::from_value(trigger_body(tenant, Some(WINDOW))).unwrap();
    let message_id = Uuid::new_v4().to_string();
    let reply = client
        .send_and_wait(&msg, &message_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.status, "completed", "{}", reply.body);

    let cycles = cycles_of(&db, &message_id).await;
    assert_eq!(cycles.len(), 1);
    let (cycle_id, status) = cycles[0].clone();
    assert_eq!(status, "completed");
    assert_eq!(reply.body["cycle_id"], cycle_id.to_string());

    let ev = events.wait_for(1, 20).await;
    assert_eq!(ev[0].routing_key, format!("completed.{tenant}"));
    assert_eq!(ev[0].json()["cycle_id"], cycle_id.to_string());
    assert_eq!(ev[0].json()["tenant_id"], tenant.to_string());

    let rows = action_rows(&db).await;
    assert!(!rows.is_empty());
    wait_for_total(&actions, rows.len(), 20, "every action published").await;
    assert_actions_delivered(&b, &rows, tenant, &actions);
    eventually(10, "actions marked published", || async {
        (db.count("SELECT count(*) FROM actions WHERE status <> 'published'")
            .await
            == 0)
            .then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM outbox_messages WHERE published_at IS NULL")
            .await,
        0
    );

    client.close().await;
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn malformed_missing_id_and_unknown_tenant_are_dead_lettered() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    b.publish_raw(b"{not json", Some("m-malformed")).await;
    let no_id = serde_json::to_vec(&trigger_body(Uuid::new_v4(), None)).unwrap();
    b.publish_raw(&no_id, None).await;
    let stranger = Uuid::new_v4();
    b.trigger(stranger, Some(WINDOW), "m-unknown-tenant").await;

    let got = dead.wait_for(3, 30).await;
    // Each dead letter says why, in the worker's words; the one without a message_id gets a
    // generated `dead-…` id so it can still be told apart.
    let reasons: BTreeMap<_, _> = got
        .iter()
        .map(|m| {
            let id = m.message_id.clone().unwrap_or_default();
            let id = if id.starts_with("dead-") {
                "-".into()
            } else {
                id
            };
            (id, m.headers.get("x-revenue-os-reason").cloned())
        })
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("-".to_owned(), Some("no_message_id".to_owned())),
            ("m-malformed".to_owned(), Some("malformed".to_owned())),
            (
                "m-unknown-tenant".to_owned(),
                Some("unknown_tenant".to_owned())
            ),
        ])
    );
    for m in &got {
        assert!(!m.headers["x-revenue-os-detail"].is_empty());
        assert!(m.persistent);
    }
    let malformed = got
        .iter()
        .find(|m| m.message_id.as_deref() == Some("m-malformed"));
    assert_eq!(malformed.unwrap().body, b"{not json");

    let row = db
        .client()
        .await
        .query_one(
            "SELECT tenant_id, error_code FROM rejected_triggers WHERE message_id = 'm-unknown-tenant'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), stranger);
    assert_eq!(row.get::<_, String>(1), "TENANT_NOT_FOUND");
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 0);

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn insufficient_data_fails_and_too_recent_skips_both_announced() {
    let (db, b, tenant, events) = setup().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    // A window with no data at all.
    b.trigger(tenant, Some(("2025-01-01", "2025-01-30")), "m-empty")
        .await;
    let ev = events.wait_for(1, 20).await;
    assert_eq!(ev[0].routing_key, format!("failed.{tenant}"));
    let body = ev[0].json();
    assert_eq!(body["code"], "INSUFFICIENT_DATA", "{body}");
    assert_eq!(body["message_id"], "m-empty");
    assert_eq!(body["tenant_id"], tenant.to_string());
    assert_eq!(body["trigger"]["source"], "test");

    b.trigger(tenant, Some(WINDOW), "m-first").await;
    let ev = events.wait_for(2, 20).await;
    assert_eq!(ev[1].routing_key, format!("completed.{tenant}"));
    b.trigger(tenant, Some(WINDOW), "m-second").await;
    let ev = events.wait_for(3, 20).await;
    assert_eq!(ev[2].routing_key, format!("skipped.{tenant}"));
    assert_eq!(ev[2].json()["code"], "CYCLE_TOO_RECENT");
    assert_eq!(ev[2].json()["message_id"], "m-second");

    assert_eq!(cycles_of(&db, "m-empty").await[0].1, "failed");
    assert_eq!(cycles_of(&db, "m-second").await[0].1, "skipped");
    // Acked, not dead-lettered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dead.snapshot().is_empty());

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn same_message_id_twice_and_to_two_workers_makes_one_cycle() {
    let (db, b, tenant, events) = setup().await;
    let actions = b.collect_actions().await;
    let s = settings(&b.prefix, &db);
    let w1 = RunningWorker::start(s.clone(), &db, Hooks::default());
    let w2 = RunningWorker::start(s.clone(), &db, Hooks::default());
    // Let both consumers attach so the copies really go to different workers.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let id = "m-dup";
    tokio::join!(
        b.trigger(tenant, Some(WINDOW), id),
        b.trigger(tenant, Some(WINDOW), id),
        b.trigger(tenant, Some(WINDOW), id),
        b.trigger(tenant, Some(WINDOW), id),
    );
    events.wait_for(1, 20).await;
    // And once more, later.
    b.trigger(tenant, Some(WINDOW), id).await;

    let rows = action_rows(&db).await;
    let n = rows.len();
    wait_for_total(&actions, n, 20, "every action published").await;
    // Give duplicates (replays, sweeps) every chance to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cycles_of(&db, id).await.len(), 1);
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 1);
    assert_actions_delivered(&b, &rows, tenant, &actions);
    assert_eq!(events.snapshot().len(), 1, "one cycle event");

    w1.stop().await;
    w2.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// The squat test: tenant B's trigger reusing tenant A's message id is B's own trigger. It
/// runs and completes; both cycles exist, and nothing is dead-lettered.
#[tokio::test]
async fn another_tenants_message_id_cannot_be_squatted() {
    let (db, b, first, events) = setup().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let second = import_tenant(&db).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    b.trigger(first, Some(WINDOW), "m-squatted").await;
    events.wait_for(1, 20).await;
    b.trigger(second, Some(WINDOW), "m-squatted").await;
    let ev = events.wait_for(2, 20).await;
    let keys: Vec<_> = ev.iter().map(|m| m.routing_key.clone()).collect();
    assert!(keys.contains(&format!("completed.{first}")), "{keys:?}");
    assert!(keys.contains(&format!("completed.{second}")), "{keys:?}");
    let cycles = cycles_of(&db, "m-squatted").await;
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(cycles.iter().all(|(_, s)| s == "completed"), "{cycles:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(dead.snapshot().is_empty(), "{:?}", dead.snapshot());

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn crash_between_commit_and_ack_replays_without_a_second_cycle() {
    let (db, b, tenant, events) = setup().await;
    let actions = b.collect_actions().await;
    let crashed = Arc::new(AtomicBool::new(false));
    let c = crashed.clone();
    let hooks = Hooks {
        after_commit: Some(Arc::new(move |_| {
            if c.swap(true, Ordering::SeqCst) {
                HookAction::Continue
            } else {
                HookAction::DropConnection
            }
        })),
        ..Hooks::default()
    };
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, hooks);

    b.trigger(tenant, Some(WINDOW), "m-crash").await;
    let rows = eventually(20, "the cycle's actions", || async {
        let r = action_rows(&db).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let n = rows.len();
    wait_for_total(&actions, n, 30, "every action after the crash").await;
    events.wait_for(1, 20).await;
    assert!(crashed.load(Ordering::SeqCst), "the fault was injected");
    // The redelivery was acked (nothing left in the queue) and replayed the same cycle.
    eventually(20, "trigger acked", || async {
        let depth = b.depth(&b.topology.triggers_queue).await;
        (depth == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cycles_of(&db, "m-crash").await.len(), 1);
    assert_actions_delivered(&b, &action_rows(&db).await, tenant, &actions);

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

async fn pending_action_rows(db: &TestDb) -> Vec<(i64, i32)> {
    db.client()
        .await
        .query(
            "SELECT id, attempts FROM outbox_messages WHERE action_id IS NOT NULL AND published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The `n` pending action rows reach the collectors (within `secs`), are marked published, and
/// each arrived exactly once as agreed.
async fn assert_pending_rows_published(
    db: &TestDb,
    b: &TestBroker,
    tenant: Uuid,
    actions: &BTreeMap<String, Collector>,
    n: usize,
    secs: u64,
) {
    wait_for_total(actions, n, secs, "the pending actions published").await;
    eventually(10, "rows marked published", || async {
        pending_action_rows(db).await.is_empty().then_some(())
    })
    .await;
    assert_actions_delivered(b, &action_rows(db).await, tenant, actions);
}

#[tokio::test]
async fn unbound_action_exchange_keeps_rows_pending_until_a_queue_is_bound() {
    let (db, b, tenant, events) = setup().await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    b.trigger(tenant, Some(WINDOW), "m-unbound").await;
    events.wait_for(1, 20).await;
    let rows = action_rows(&db).await;
    assert!(!rows.is_empty());
    // Returned (no queue bound): pending, with attempts counted, status still pending.
    eventually(20, "publish attempts recorded", || async {
        let p = pending_action_rows(&db).await;
        (p.len() == rows.len() && p.iter().all(|(_, a)| *a >= 2)).then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM actions WHERE status = 'pending'")
            .await,
        rows.len() as i64
    );

    let actions = b.collect_actions().await;
    assert_pending_rows_published(&db, &b, tenant, &actions, rows.len(), 60).await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn restart_publishes_pending_outbox_rows() {
    let (db, b, tenant, events) = setup().await;
    let s = settings(&b.prefix, &db);

    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    b.trigger(tenant, Some(WINDOW), "m-restart").await;
    events.wait_for(1, 20).await;
    let n = action_rows(&db).await.len();
    eventually(20, "rows left pending", || async {
        (pending_action_rows(&db).await.len() == n).then_some(())
    })
    .await;
    w.stop().await;
    assert_eq!(
        pending_action_rows(&db).await.len(),
        n,
        "still pending after shutdown"
    );

    let actions = b.collect_actions().await;
    // Make sure nothing but the new worker could publish them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_total(&actions), 0);
    let w = RunningWorker::start(s, &db, Hooks::default());
    assert_pending_rows_published(&db, &b, tenant, &actions, n, 20).await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_panic_becomes_internal_error_and_the_worker_keeps_going() {
    let (db, b, tenant, events) = setup().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let hooks = Hooks {
        before_cycle: Some(Arc::new(|inc| {
            if inc.message_id.as_deref() == Some("m-panic") {
                panic!("injected panic");
            }
        })),
        after_commit: None,
    };
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, hooks);

    b.trigger(tenant, Some(WINDOW), "m-panic").await;
    let ev = events.wait_for(1, 20).await;
    assert_eq!(ev[0].routing_key, format!("failed.{tenant}"));
    assert_eq!(ev[0].json()["code"], "INTERNAL_ERROR");
    let d = dead.wait_for(1, 20).await;
    assert_eq!(d[0].message_id.as_deref(), Some("m-panic"));

    b.trigger(tenant, Some(WINDOW), "m-after").await;
    let ev = events.wait_for(2, 20).await;
    assert_eq!(ev[1].routing_key, format!("completed.{tenant}"));

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_database_holds_the_delivery_and_pauses_consumption() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let mut s = settings(&b.prefix, &db);
    s.worker.shutdown_grace_secs = 2;
    // Nothing listens on port 1: every checkout fails, the database is unreachable.
    s.database.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
    s.database.connect_timeout_secs = 1;
    let store = revenue_os::store::Store::connect(&s.database)
        .await
        .unwrap();
    let deliveries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = deliveries.clone();
    let hooks = Hooks {
        before_cycle: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        after_commit: None,
    };
    let w = RunningWorker::start_with(s, store, hooks);

    b.trigger(Uuid::new_v4(), Some(WINDOW), "m-db-down").await;
    b.trigger(Uuid::new_v4(), Some(WINDOW), "m-db-down-2").await;
    // Well past what the delivery limit used to allow (5 quick retries, then a requeue each).
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    // The probe finds the database unreachable at start and shuts the gate: nothing is taken,
    // or at most the one trigger taken before it shut, which is then held, not requeued.
    let n = deliveries.load(Ordering::SeqCst);
    assert!(n <= 1, "{n} attempts while the database was unreachable");
    assert!(dead.snapshot().is_empty(), "nothing dead-lettered");

    w.stop().await;
    // The held and the untaken triggers are back in the queue for the next worker.
    let depth = eventually(20, "both triggers back in the queue", || async {
        let depth = b.depth(&b.topology.triggers_queue).await;
        (depth == 2).then_some(depth)
    })
    .await;
    assert_eq!(depth, 2);
    b.cleanup().await;
    db.cleanup().await;
}
