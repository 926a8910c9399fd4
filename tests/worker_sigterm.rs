//! The `revenue-os worker` binary: ops endpoints, SIGTERM with triggers in flight exits 0 and
//! loses nothing; a restarted worker processes the rest.

mod common;

use common::amqp::{TestBroker, WINDOW, amqp_url, eventually, import_tenant};
use common::db::TestDb;
use common::process::{free_port, get, sigterm_and_wait, spawn_worker};
use std::process::Command;

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_triggers_in_flight_exits_zero_and_loses_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let mut tenants = vec![];
    for _ in 0..8 {
        tenants.push(import_tenant(&db).await);
    }
    let actions = b.collect_actions().await;

    let port = free_port();
    let worker = spawn_worker(&b.prefix, &db, port);
    eventually(30, "ready", || async {
        matches!(get(port, "/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    assert_eq!(get(port, "/healthz").await.map(|r| r.0), Some(200));

    let mut ids = vec![];
    for round in 0..4 {
        for t in &tenants {
            let id = format!("m-{round}-{t}");
            b.trigger(*t, Some(WINDOW), &id).await;
            ids.push(id);
        }
    }
    eventually(30, "the first cycle", || async {
        (count(&db, "SELECT count(*) FROM cycles").await >= 1).then_some(())
    })
    .await;
    let status = sigterm_and_wait(worker).await;
    assert!(status.success(), "exit status {status:?}");
    let done = count(&db, "SELECT count(*) FROM cycles").await;
    eprintln!("cycles at SIGTERM exit: {done} of {}", ids.len());

    // Nothing lost: whatever has no cycle is still queued, and a new worker finishes it.
    let port2 = free_port();
    let worker = spawn_worker(&b.prefix, &db, port2);
    let total = ids.len() as i64;
    eventually(60, "a cycle per trigger after restart", || async {
        (count(&db, "SELECT count(*) FROM cycles").await >= total).then_some(())
    })
    .await;
    let client = db.client().await;
    for id in &ids {
        let n: i64 = client
            .query_one("SELECT count(*) FROM cycles WHERE message_id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{id}");
    }
    let n = count(&db, "SELECT count(*) FROM actions").await as usize;
    eventually(30, "every action delivered", || {
        let a = actions.clone();
        async move { (a.values().map(|c| c.snapshot().len()).sum::<usize>() >= n).then_some(()) }
    })
    .await;
    eventually(20, "outbox drained", || async {
        (count(
            &db,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
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
