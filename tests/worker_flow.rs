//! The worker end to end against the real RabbitMQ and PostgreSQL: each test has its own
//! database and exchange/queue prefix and deletes them at the end.

mod common;

use common::amqp::{
    RunningWorker, TestBroker, WINDOW, eventually, import_tenant, settings, trigger_body,
};
use common::db::TestDb;
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

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// Every action row arrived exactly once on its subsystem's exchange with the agreed id,
/// routing key, headers and body.
fn assert_actions_delivered(
    b: &TestBroker,
    rows: &[ActionRow],
    tenant: Uuid,
    got: &BTreeMap<String, Vec<common::amqp::Received>>,
) {
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
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenant(&db).await;
    let actions = b.collect_actions().await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let s = settings(&b.prefix, &db);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());

    // Publish through the client a scheduler or `revenue-os trigger --wait` uses.
    let client = TriggerClient::connect(&s.amqp, b.topology.clone()).await.unwrap();
    let msg: TriggerMessage =
        serde_json::from_value(trigger_body(tenant, Some(WINDOW))).unwrap();
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
    let rows2 = rows.clone();
    eventually(20, "every action published", || {
        let a = actions.clone();
        let n = rows2.len();
        async move {
            (a.values().map(|c| c.snapshot().len()).sum::<usize>() >= n).then_some(())
        }
    })
    .await;
    let got: BTreeMap<_, _> = actions.iter().map(|(k, c)| (k.clone(), c.snapshot())).collect();
    assert_actions_delivered(&b, &rows, tenant, &got);
    eventually(10, "actions marked published", || async {
        (scalar(&db, "SELECT count(*) FROM actions WHERE status <> 'published'").await == 0)
            .then_some(())
    })
    .await;
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await,
        0
    );

    client.close().await;
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
