//! The `revenue-os worker` binary: ops endpoints, SIGTERM with triggers in flight exits 0 and
//! loses nothing; a restarted worker processes the rest.

use crate::common::amqp::{
    TestBroker, WINDOW, amqp_url, assert_one_cycle_each, eventually, import_tenants,
    wait_for_total, wait_outbox_drained,
};
use crate::common::db::TestDb;
use crate::common::process::{free_port, get, sigterm_and_wait, spawn_worker};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_triggers_in_flight_exits_zero_and_loses_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 8).await;
    let actions = b.collect_actions().await;

    let port = free_port();
    let worker = spawn_worker(&b.prefix, &db, port);
    eventually(30, "ready", || async {
        matches!(get(port, "/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    assert_eq!(get(port, "/healthz").await.map(|r| r.0), Some(200));

    let ids = b.trigger_rounds(&tenants, 0..4).await;
    eventually(30, "the first cycle", || async {
        (db.count("SELECT count(*) FROM cycles").await >= 1).then_some(())
    })
    .await;
    let status = sigterm_and_wait(worker).await;
    assert!(status.success(), "exit status {status:?}");
    let done = db.count("SELECT count(*) FROM cycles").await;
    eprintln!("cycles at SIGTERM exit: {done} of {}", ids.len());

    // Nothing lost: whatever has no cycle is still queued, and a new worker finishes it.
    let port2 = free_port();
    let worker = spawn_worker(&b.prefix, &db, port2);
    let total = ids.len() as i64;
    eventually(60, "a cycle per trigger after restart", || async {
        (db.count("SELECT count(*) FROM cycles").await >= total).then_some(())
    })
    .await;
    assert_one_cycle_each(&db, &ids).await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, n, 30, "every action delivered").await;
    wait_outbox_drained(&db, 20).await;
    // `revenue-os trigger --wait` against the running binary: this tenant just ran a cycle,
    // so the answer is a skipped cycle (exit 2) printed as JSON.
    let out = tokio::task::spawn_blocking({
        let (prefix, url, tenant) = (b.prefix.clone(), db.url().to_owned(), tenants[0]);
        move || {
            Command::new(env!("CARGO_BIN_EXE_revenue-os"))
                .args([
                    "trigger",
                    "--tenant",
                    &tenant.to_string(),
                    "--wait",
                    "--timeout",
                    "30",
                ])
                .args(["--start", WINDOW.0, "--end", WINDOW.1])
                .env("AMQP_URL", amqp_url())
                .env("DATABASE_URL", url)
                .env("REVENUE_OS__AMQP__PREFIX", prefix)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["code"], "CYCLE_TOO_RECENT", "{reply}");

    let (code, metrics) = get(port2, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    for name in [
        "revenue_os_cycles_total",
        "revenue_os_cycle_duration_seconds",
        "revenue_os_outbox_pending",
        "revenue_os_publish_failures_total",
        "revenue_os_redeliveries_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    let status = sigterm_and_wait(worker).await;
    assert!(status.success(), "exit status {status:?}");

    b.cleanup().await;
    db.cleanup().await;
}
