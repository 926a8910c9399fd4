//! Executors report back on `<prefix>.results`: every allowed lifecycle step, duplicates,
//! out-of-order and terminal-state reports, bad reports dead-lettered with their reason, and
//! reports waiting in the queue across a worker restart. Real broker, real database.

use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, eventually, import_tenant, settings};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, free_port, get, sigterm_and_wait, worker_command};
use revenue_os::broker::Outgoing;
use revenue_os::store::tenant_lock_key;
use revenue_os::worker::Hooks;
use serde_json::{Value, json};
use uuid::Uuid;

/// A report event as an executor would publish it.
pub fn event(id: &str, kind: &str, subject: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "test-executor",
        "type": format!("revenue_os.action.{kind}"), "time": "2026-11-26T06:01:02Z",
        "subject": subject, "datacontenttype": "application/json", "data": data,
    }))
    .unwrap()
}

/// Publishes a report body (confirmed, persistent) as an executor does.
pub async fn publish_report(b: &TestBroker, message_id: &str, body: Vec<u8>) {
    b.publisher
        .publish(&Outgoing {
            exchange: b.topology.results_exchange.clone(),
            routing_key: "report.test".into(),
            message_id: message_id.to_owned(),
            body,
            mandatory: true,
            persistent: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Runs one cycle for a fresh tenant, with executor queues bound so its actions get
/// published, and returns the tenant with its actions' subjects, by priority.
pub async fn cycle_with_actions(
    b: &TestBroker,
    db: &TestDb,
    message_id: &str,
) -> (Uuid, Vec<String>) {
    let _executors = b.collect_actions().await;
    let tenant = import_tenant(db).await;
    b.trigger(tenant, Some(WINDOW), message_id).await;
    let completed = format!(
        "SELECT count(*) FROM cycles WHERE message_id = '{message_id}' AND status = 'completed'"
    );
    eventually(30, "the cycle, its actions published", || async {
        let done = db.count(&completed).await == 1;
        let pending = db
            .count("SELECT count(*) FROM actions WHERE status = 'pending'")
            .await;
        (done && pending == 0).then_some(())
    })
    .await;
    let rows = db
        .client()
        .await
        .query(
            "SELECT a.cycle_id::text || ':' || a.action_id FROM actions a
             JOIN cycles c USING (cycle_id) WHERE c.message_id = $1 ORDER BY a.priority",
            &[&message_id],
        )
        .await
        .unwrap();
    (tenant, rows.iter().map(|r| r.get(0)).collect())
}

async fn status(db: &TestDb, subject: &str) -> String {
    let (cycle, action) = subject.split_once(':').unwrap();
    db.client()
        .await
        .query_one(
            "SELECT status FROM actions WHERE cycle_id = $1::text::uuid AND action_id = $2",
            &[&cycle, &action],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_status(db: &TestDb, subject: &str, want: &str) {
    eventually(20, &format!("{subject} {want}"), || async {
        (status(db, subject).await == want).then_some(())
    })
    .await;
}

async fn reports_of(db: &TestDb, subject: &str) -> Vec<(String, String, String, String)> {
    let (cycle, action) = subject.split_once(':').unwrap();
    db.client()
        .await
        .query(
            "SELECT type, status_before, status_after, result FROM action_reports
             WHERE cycle_id = $1::text::uuid AND action_id = $2 ORDER BY id",
            &[&cycle, &action],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn tuple(t: (&str, &str, &str, &str)) -> (String, String, String, String) {
    (t.0.into(), t.1.into(), t.2.into(), t.3.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_transition_duplicates_late_and_terminal_reports() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    let (tenant, subjects) = cycle_with_actions(&b, &db, "life-1").await;
    assert!(subjects.len() >= 4, "{subjects:?}");
    let t = json!(tenant.to_string());
    let (a, f, r, o) = (&subjects[0], &subjects[1], &subjects[2], &subjects[3]);

    // The success path: acknowledged, applied, outcome.
    publish_report(
        &b,
        "a-1",
        event("a-1", "acknowledged", a, json!({"tenant_id": t})),
    )
    .await;
    wait_status(&db, a, "acknowledged").await;
    let applied = json!({"tenant_id": t, "before": 517.85, "after": 621.41, "external_ref": "x:1"});
    publish_report(&b, "a-2", event("a-2", "applied", a, applied.clone())).await;
    wait_status(&db, a, "applied").await;
    // A duplicate (same source and id) changes nothing and is not stored twice.
    publish_report(&b, "a-2", event("a-2", "applied", a, applied)).await;
    let outcome = json!({"tenant_id": t, "target_metric": "pipeline_total",
        "baseline_value": 430892.0, "observed_value": 512000.0, "delta": 81108.0,
        "confidence": 0.93, "outcome": "successful"});
    publish_report(&b, "a-3", event("a-3", "outcome", a, outcome)).await;
    wait_status(&db, a, "concluded").await;
    assert_eq!(
        reports_of(&db, a).await,
        vec![
            tuple(("acknowledged", "published", "acknowledged", "applied")),
            tuple(("applied", "acknowledged", "applied", "applied")),
            tuple(("outcome", "applied", "concluded", "applied")),
        ]
    );
    let action_id = a.split_once(':').unwrap().1;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT outcome, source, confidence FROM action_results WHERE tenant_id = $1 AND action_id = $2",
            &[&tenant, &action_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "successful");
    assert_eq!(row.get::<_, String>(1), "test-executor");
    assert_eq!(row.get::<_, f64>(2), 0.93);

    // failed and rejected end an action; a report after that is recorded, status unchanged.
    publish_report(
        &b,
        "f-1",
        event(
            "f-1",
            "failed",
            f,
            json!({"tenant_id": t, "reason": "API 503 after 5 tries"}),
        ),
    )
    .await;
    wait_status(&db, f, "failed").await;
    publish_report(
        &b,
        "f-2",
        event(
            "f-2",
            "applied",
            f,
            json!({"tenant_id": t, "before": 1, "after": 2}),
        ),
    )
    .await;
    eventually(20, "the late applied recorded", || async {
        (reports_of(&db, f).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        reports_of(&db, f).await[1],
        tuple(("applied", "failed", "failed", "invalid_transition"))
    );
    assert_eq!(status(&db, f).await, "failed");
    publish_report(
        &b,
        "r-1",
        event(
            "r-1",
            "rejected",
            r,
            json!({"tenant_id": t, "reason": "budget above the account cap"}),
        ),
    )
    .await;
    wait_status(&db, r, "rejected").await;

    // applied before acknowledged: the acknowledged is late and changes nothing.
    publish_report(
        &b,
        "o-1",
        event(
            "o-1",
            "applied",
            o,
            json!({"tenant_id": t, "before": 24, "after": 8}),
        ),
    )
    .await;
    wait_status(&db, o, "applied").await;
    publish_report(
        &b,
        "o-2",
        event("o-2", "acknowledged", o, json!({"tenant_id": t})),
    )
    .await;
    eventually(20, "the late acknowledged recorded", || async {
        (reports_of(&db, o).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        reports_of(&db, o).await[1],
        tuple(("acknowledged", "applied", "applied", "late"))
    );
    assert_eq!(
        db.count("SELECT count(*) FROM action_reports WHERE event_id = 'a-2'")
            .await,
        1
    );

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_dead_lettered_with_their_reason_and_counted() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let dead = b.consume_queue(&b.topology.results_dead_queue).await;
    let port = free_port();
    // Killed if the test fails before the SIGTERM at its end.
    let mut worker = KillOnDrop(Some(worker_command(&b.prefix, &db, port).spawn().unwrap()));
    let (tenant, subjects) = cycle_with_actions(&b, &db, "bad-1").await;
    let other = import_tenant(&db).await;
    let s = &subjects[0];
    let t = json!(tenant.to_string());
    let ghost = format!("{}:campaigns.scale.nothing.budget_daily", Uuid::new_v4());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("b-1", b"{not json".to_vec(), "not_cloudevent"),
        (
            "b-2",
            event("b-2", "exploded", s, json!({"tenant_id": t})),
            "unknown_type",
        ),
        (
            "b-3",
            event("b-3", "failed", s, json!({"tenant_id": t})),
            "invalid_report",
        ),
        (
            "b-4",
            event("b-4", "acknowledged", &ghost, json!({"tenant_id": t})),
            "unknown_action",
        ),
        (
            "b-5",
            event(
                "b-5",
                "applied",
                s,
                json!({"tenant_id": other.to_string(), "before": 1, "after": 2}),
            ),
            "tenant_mismatch",
        ),
    ];
    for (id, body, _) in &cases {
        publish_report(&b, id, body.clone()).await;
    }
    let got = dead.wait_for(cases.len(), 30).await;
    for (id, body, reason) in &cases {
        let m = got
            .iter()
            .find(|m| m.message_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} not dead-lettered"));
        assert_eq!(
            m.headers.get("x-revenue-os-reason").map(String::as_str),
            Some(*reason),
            "{id}"
        );
        assert!(m.headers.contains_key("x-revenue-os-detail"), "{id}");
        assert_eq!(&m.body, body, "{id}: the body is kept as it was");
    }
    // The other tenant's report changed nothing.
    assert_eq!(status(&db, s).await, "published");
    assert_eq!(db.count("SELECT count(*) FROM action_reports").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM lever_state").await, 0);

    let page = eventually(20, "counted", || async {
        let (_, page) = get(port, "/metrics").await?;
        page.lines()
            .any(|l| l.starts_with("revenue_os_reports_total") && l.contains("dead_lettered"))
            .then_some(page)
    })
    .await;
    let dead_lettered: f64 = page
        .lines()
        .filter(|l| {
            l.starts_with("revenue_os_reports_total") && l.contains("result=\"dead_lettered\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead_lettered, cases.len() as f64, "{page}");
    assert!(
        page.contains("revenue_os_actions{status=\"published\"}"),
        "{page}"
    );
    let child = worker.0.take().expect("worker running");
    assert!(sigterm_and_wait(child).await.success());
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_waiting_in_the_queue_survive_a_worker_restart() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    let (tenant, subjects) = cycle_with_actions(&b, &db, "restart-1").await;
    w.stop().await;
    // Nobody consumes now: the reports wait in the quorum queue.
    let t = json!(tenant.to_string());
    for (i, s) in subjects.iter().enumerate() {
        let id = format!("w-{i}");
        publish_report(
            &b,
            &id,
            event(&id, "acknowledged", s, json!({"tenant_id": t})),
        )
        .await;
    }
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    eventually(30, "every waiting report recorded", || async {
        (db.count("SELECT count(*) FROM action_reports").await == subjects.len() as i64)
            .then_some(())
    })
    .await;
    for s in &subjects {
        assert_eq!(status(&db, s).await, "acknowledged");
    }
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// Reports give way to running cycles (`worker.report_turn_ms`). While a trigger's cycle
/// waits on its tenant's lock, a first report is taken at once, but the next waits for the
/// turn (ten minutes here) or for the cycle's end, whichever is first. At 0 both are recorded
/// while the cycle still waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_wait_for_running_cycles_unless_the_turn_is_zero() {
    for (turn_ms, second_waits) in [(600_000, true), (0, false)] {
        let db = TestDb::new().await;
        let b = TestBroker::new().await;
        let mut s = settings(&b.prefix, &db);
        s.worker.report_turn_ms = turn_ms;
        let w = RunningWorker::start(s, &db, Hooks::default());
        let (tenant, subjects) = cycle_with_actions(&b, &db, "turn-1").await;
        let subject = &subjects[0];
        let t = json!(tenant.to_string());

        // Another tenant's cycle, held on its advisory lock by this test's own transaction,
        // well inside the cycle's 20 s lock_timeout.
        let other = import_tenant(&db).await;
        let mut holder = db.client().await;
        let hold = holder.transaction().await.unwrap();
        hold.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&tenant_lock_key(other)],
        )
        .await
        .unwrap();
        b.trigger(other, Some(WINDOW), "turn-2").await;
        // This database's locks only: other tests run beside this one.
        let waiting = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                       WHERE d.datname = current_database()
                         AND l.locktype = 'advisory' AND NOT l.granted";
        eventually(
            10,
            "the other tenant's cycle waiting on its lock",
            || async { (db.count(waiting).await > 0).then_some(()) },
        )
        .await;

        publish_report(
            &b,
            "t-1",
            event("t-1", "acknowledged", subject, json!({"tenant_id": t})),
        )
        .await;
        wait_status(&db, subject, "acknowledged").await;
        let applied = json!({"tenant_id": t, "before": 1.0, "after": 2.0, "external_ref": "x:1"});
        publish_report(&b, "t-2", event("t-2", "applied", subject, applied)).await;
        if second_waits {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            assert_eq!(
                status(&db, subject).await,
                "acknowledged",
                "a second report while the cycle runs waits for its turn"
            );
            assert!(db.count(waiting).await > 0, "the cycle still waits");
        } else {
            wait_status(&db, subject, "applied").await;
            assert!(
                db.count(waiting).await > 0,
                "recorded while the cycle still waits"
            );
        }
        hold.rollback().await.unwrap();
        wait_status(&db, subject, "applied").await;
        let done =
            "SELECT count(*) FROM cycles WHERE message_id = 'turn-2' AND status = 'completed'";
        eventually(30, "the held cycle completed", || async {
            (db.count(done).await == 1).then_some(())
        })
        .await;
        w.stop().await;
        b.cleanup().await;
        db.cleanup().await;
    }
}

/// A burst of reports waiting in the queue is taken in batches (`worker.report_batch`): the
/// reports share transactions, yet each action's `acknowledged` then `applied` is judged in
/// that order, a duplicate inside the burst is recorded once, and a bad report among them is
/// dead-lettered alone without holding back the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reports_shares_transactions_and_keeps_each_actions_order() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let dead = b.consume_queue(&b.topology.results_dead_queue).await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    let (tenant, subjects) = cycle_with_actions(&b, &db, "burst-1").await;
    w.stop().await;
    let t = json!(tenant.to_string());
    let ghost = format!("{}:campaigns.scale.nothing.budget_daily", Uuid::new_v4());
    for (i, s) in subjects.iter().enumerate() {
        let (ack, app) = (format!("k-{i}"), format!("p-{i}"));
        publish_report(
            &b,
            &ack,
            event(&ack, "acknowledged", s, json!({"tenant_id": t})),
        )
        .await;
        let applied = json!({"tenant_id": t, "before": 1.0, "after": 2.0});
        publish_report(&b, &app, event(&app, "applied", s, applied.clone())).await;
        if i == 0 {
            // The same event again, and one naming no action, in the middle of the burst.
            publish_report(&b, &app, event(&app, "applied", s, applied)).await;
            publish_report(
                &b,
                "ghost",
                event("ghost", "acknowledged", &ghost, json!({"tenant_id": t})),
            )
            .await;
        }
    }
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());
    eventually(30, "every action applied", || async {
        let applied = db
            .count("SELECT count(*) FROM actions WHERE status = 'applied'")
            .await;
        (applied == subjects.len() as i64).then_some(())
    })
    .await;
    for s in &subjects {
        assert_eq!(
            reports_of(&db, s).await,
            vec![
                tuple(("acknowledged", "published", "acknowledged", "applied")),
                tuple(("applied", "acknowledged", "applied", "applied")),
            ],
            "{s}"
        );
    }
    let got = dead.wait_for(1, 30).await;
    assert_eq!(got[0].message_id.as_deref(), Some("ghost"));
    assert_eq!(
        got[0]
            .headers
            .get("x-revenue-os-reason")
            .map(String::as_str),
        Some("unknown_action")
    );
    // Rows written by one transaction share its xmin: fewer transactions than reports.
    let (reports, transactions) = (
        db.count("SELECT count(*) FROM action_reports").await,
        db.count("SELECT count(DISTINCT xmin::text) FROM action_reports")
            .await,
    );
    assert_eq!(reports, 2 * subjects.len() as i64);
    assert!(
        transactions < reports,
        "{reports} reports in {transactions} transactions"
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
