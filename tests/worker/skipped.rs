//! A cycle with nothing to do (issue 24), through the worker: announced as `skipped` with
//! reason `no_executable_action`, nothing published to an executor, and the next trigger
//! inside the spacing is too recent.

use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, settings};
use crate::common::db::TestDb;
use revenue_os::contract::catalog::Catalog;
use revenue_os::contract::{KernelInput, Lever};
use revenue_os::worker::Hooks;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn nothing_to_do_is_skipped_announced_and_spaced() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    // The example tenant with only the pricing lever: no demand play can use it.
    let tenant = Uuid::new_v4();
    let mut input: KernelInput = crate::common::fixture(crate::common::DEMAND_BOUND);
    input.tenant_id = tenant.to_string();
    input.guardrails.allowed_levers = vec![Lever::Pricing];
    db.store()
        .import(&input, &Catalog::embedded().unwrap())
        .await
        .unwrap();
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let actions = b.collect_actions().await;
    let dead = b.consume_queue(&b.topology.dead_queue).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    b.trigger(tenant, Some(WINDOW), "m-nothing").await;
    let ev = events.wait_for(1, 20).await;
    assert_eq!(ev[0].routing_key, format!("skipped.{tenant}"));
    let body = ev[0].json();
    assert_eq!(body["details"]["reason"], "no_executable_action", "{body}");
    b.trigger(tenant, Some(WINDOW), "m-again").await;
    let ev = events.wait_for(2, 20).await;
    assert_eq!(ev[1].routing_key, format!("skipped.{tenant}"));
    assert_eq!(ev[1].json()["code"], "CYCLE_TOO_RECENT");

    let rows = db
        .client()
        .await
        .query(
            "SELECT message_id, status, skip_reason, error_code FROM cycles ORDER BY executed_at",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "m-nothing".to_owned(),
                "skipped".to_owned(),
                Some("no_executable_action".to_owned()),
                None
            ),
            (
                "m-again".to_owned(),
                "skipped".to_owned(),
                None,
                Some("CYCLE_TOO_RECENT".to_owned())
            ),
        ]
    );
    // Nothing reached an executor, and both triggers were acked, not dead-lettered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(actions.values().all(|c| c.snapshot().is_empty()));
    assert!(dead.snapshot().is_empty());

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
