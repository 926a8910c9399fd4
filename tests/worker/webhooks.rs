//! Webhook notifications on the real services: state changes driven through the store and
//! the worker (held, decided, expired, superseded, a dead-lettered trigger, a harmful
//! deviation recorded twice; then a watchdog revert and escalation, a quarantined load's
//! refused row and a deviation found by detection after that load, each sweep, detection and
//! load run twice) each arrive once at a local HTTP receiver, signed, and a changed body fails
//! verification as `signature_mismatch`; a receiver that is down for 30 s gets them after.

use crate::common::amqp::{RunningWorker, TestBroker, eventually, settings};
use crate::common::db::TestDb;
use crate::common::*;
use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::{DateTime, Duration as Days, Utc};
use revenue_os::broker::Topology;
use revenue_os::contract::{DateRange, KernelInput};
use revenue_os::notify::{self, VerifyError};
use revenue_os::store::*;
use revenue_os::worker::{Hooks, PlanContext, Planner, TriggerPolicy};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const SECRET: &str = "test-secret-0123456789abcdef";
const TOLERANCE: Duration = Duration::from_secs(300);

/// What the receiver got: the headers it reads and the exact body.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    idempotency: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn verify(&self, body: &[u8]) -> Result<(), VerifyError> {
        notify::verify(
            SECRET.as_bytes(),
            &self.timestamp,
            body,
            &self.signature,
            Utc::now().timestamp(),
            TOLERANCE,
        )
    }
}

type Inbox = Arc<Mutex<Vec<Got>>>;

/// A receiver on `listener` answering 200 to every POST.
fn receiver(listener: tokio::net::TcpListener) -> Inbox {
    let inbox: Inbox = Arc::default();
    let kept = inbox.clone();
    let app = axum::Router::new().fallback(move |h: HeaderMap, body: Bytes| {
        let kept = kept.clone();
        async move {
            let get = |k: &str| {
                h.get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            kept.lock().unwrap().push(Got {
                id: get("webhook-id"),
                idempotency: get("idempotency-key"),
                timestamp: get("webhook-timestamp"),
                signature: get("webhook-signature"),
                body: body.to_vec(),
            });
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    inbox
}

fn quick(s: &mut revenue_os::config::Settings) {
    s.watchdog.interval_secs = 0;
    s.notify.interval_ms = 100;
    s.notify.backoff_initial_secs = 1;
    s.notify.backoff_max_secs = 2;
    s.notify.max_attempts = 1000;
    s.notify.timeout_secs = 2;
    s.notify.console_url = "https://console.example".into();
}

/// One cycle of the example tenant at `now`, through the worker's own policy.
async fn cycle(db: &TestDb, input: &KernelInput, message_id: &str, now: DateTime<Utc>) -> Uuid {
    let rules = rules();
    let planner = Planner::new(Topology::new("webhooks", &catalog(), 5));
    let mut trigger = input.trigger.clone();
    trigger.triggered_at = now.to_rfc3339();
    let req = CycleRequest {
        message_id: message_id.into(),
        tenant_id: Uuid::parse_str(&input.tenant_id).unwrap(),
        trigger: trigger.clone(),
        triggered_at: now,
        window: DateRange::parse(&input.analysis_window).unwrap(),
        cycle_id: Uuid::new_v4(),
    };
    let pctx = PlanContext {
        tenant_id: req.tenant_id,
        message_id: message_id.into(),
        trigger,
    };
    let policy = TriggerPolicy {
        rules: &rules,
        planner: &planner,
        trigger: &pctx,
        now,
    };
    match db.store().run_cycle(&req, now, &policy).await.unwrap() {
        CycleOutcome::Recorded { cycle_id, .. } => cycle_id,
        other => panic!("{other:?}"),
    }
}

async fn pending(db: &TestDb, tenant: Uuid) -> Vec<PendingApproval> {
    db.store().pending_approvals(Some(tenant)).await.unwrap()
}

/// Waits until the receiver holds `n` distinct deliveries, then gives them by id.
async fn wait_for(inbox: &Inbox, n: usize, secs: u64) -> BTreeMap<String, Got> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let got: BTreeMap<String, Got> = inbox
            .lock()
            .unwrap()
            .iter()
            .map(|g| (g.id.clone(), g.clone()))
            .collect();
        if got.len() >= n {
            return got;
        }
        if tokio::time::Instant::now() > deadline {
            let events: Vec<Value> = got.values().map(|g| g.json()["subject"].clone()).collect();
            panic!("{n} webhook deliveries not there after {secs}s; got {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_state_change_arrives_once_signed_and_a_changed_body_fails() {
    let (db, input) = imported().await;
    let tenant = Uuid::parse_str(&input.tenant_id).unwrap();
    hold_routing(&db, tenant).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/revenue-os", listener.local_addr().unwrap());
    let inbox = receiver(listener);
    assert!(
        db.store()
            .add_webhook(&TenantWebhook {
                tenant_id: tenant,
                name: "ops".into(),
                url,
                events: vec!["*".into()],
                secret: SECRET.into(),
                created_at: Utc::now(),
            })
            .await
            .unwrap()
    );
    let b = TestBroker::new().await;
    let mut s = settings(&b.prefix, &db);
    quick(&mut s);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());

    // Held, then expired by the sweep.
    let t0 = fixture_now();
    cycle(&db, &input, "wh-1", t0).await;
    assert_eq!(pending(&db, tenant).await.len(), 1);
    assert_eq!(
        revenue_os::approvals::sweep(db.store(), 0, Utc::now())
            .await
            .unwrap(),
        1
    );
    // Held twice; the older one superseded by the newer cycle, the newer one rejected.
    cycle(&db, &input, "wh-2", t0 + Days::hours(12)).await;
    cycle(&db, &input, "wh-3", t0 + Days::hours(24)).await;
    assert_eq!(
        revenue_os::approvals::sweep(db.store(), 10_000, Utc::now())
            .await
            .unwrap(),
        1,
        "superseded"
    );
    let p = pending(&db, tenant).await;
    assert_eq!(p.len(), 1);
    let rejected = ApprovalRequest::Reject {
        by: "ops@example.com".into(),
        hash: p[0].hash.clone(),
        reason: "not this week".into(),
    };
    let outcome = revenue_os::app::decide(
        db.store(),
        &s,
        &catalog(),
        p[0].cycle_id,
        &p[0].action_id,
        rejected,
    )
    .await
    .unwrap();
    assert_eq!(outcome, ApprovalOutcome::Rejected);
    // A trigger of this tenant the worker cannot use: dead-lettered. (One naming no tenant
    // goes to the global webhooks only: the next test.)
    let body = serde_json::json!({ "tenant_id": tenant.to_string(), "trigger_type": 7 });
    b.publish_raw(body.to_string().as_bytes(), Some("wh-garbage"))
        .await;
    // A harmful deviation, recorded twice (a load run again): one notification.
    let row = DeviationRow {
        metric_id: "leads_created".into(),
        day: t0.date_naive(),
        observed: 10.0,
        expected: 40.0,
        band_lower: 30.0,
        band_upper: 50.0,
        k: 3.5,
        method: "mstl_ets".into(),
        days_used: 60,
        log_scale: false,
        severity: 3.0,
        harmful: true,
    };
    for _ in 0..2 {
        db.store()
            .record_deviations(tenant, std::slice::from_ref(&row), None)
            .await
            .unwrap();
    }
    // A sweep that runs again changes nothing and tells nobody again.
    revenue_os::approvals::sweep(db.store(), 0, Utc::now())
        .await
        .unwrap();

    // 3 held + expired + superseded + rejected + dead letter + deviation.
    let got = wait_for(&inbox, 8, 60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = inbox.lock().unwrap().clone();
    let mut by_change: BTreeMap<(String, String), usize> = BTreeMap::new();
    for g in &all {
        assert_eq!(g.verify(&g.body), Ok(()), "{}", g.json());
        assert_eq!(g.id, g.idempotency);
        let j = g.json();
        *by_change
            .entry((
                j["event"].as_str().unwrap().to_owned(),
                j["subject"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
        let text = j["text"].as_str().unwrap();
        assert!(
            !text.contains('\n') && text.contains("<https://console.example/"),
            "{text}"
        );
    }
    assert!(by_change.values().all(|n| *n == 1), "{by_change:?}");
    let events: BTreeMap<&str, usize> = by_change.keys().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k.0.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        events,
        BTreeMap::from([
            ("action_held", 3),
            ("approval_decided", 1),
            ("approval_expired", 1),
            ("approval_superseded", 1),
            ("deviation_detected", 1),
            ("trigger_dead_lettered", 1),
        ]),
        "{by_change:?}"
    );
    let decided = got
        .values()
        .map(Got::json)
        .find(|j| j["event"] == "approval_decided")
        .unwrap();
    assert_eq!(decided["tenant_id"], tenant.to_string());
    assert_eq!(decided["action_id"], p[0].action_id);
    assert_eq!(decided["details"]["decision"], "rejected");
    assert_eq!(decided["details"]["by"], "ops@example.com");
    let text = decided["text"].as_str().unwrap();
    assert!(
        text.contains(&tenant.to_string()) && text.contains(&p[0].action_id),
        "{text}"
    );

    // A body changed on the way fails with the documented code.
    let g = got.values().next().unwrap();
    let mut tampered = g.body.clone();
    let at = tampered.iter().position(|c| *c == b'"').unwrap();
    tampered.insert(at + 1, b' ');
    let e = g.verify(&tampered).unwrap_err();
    assert_eq!(e.code(), "signature_mismatch");

    assert_eq!(
        db.count("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL")
            .await,
        0
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_down_for_30_seconds_gets_the_messages_afterwards() {
    let db = TestDb::new().await;
    // A fixed port, free now, nobody listening on it for 30 s.
    let port = crate::common::process::free_port();
    let notify = revenue_os::config::NotifySettings {
        interval_ms: 100,
        backoff_initial_secs: 1,
        backoff_max_secs: 2,
        max_attempts: 1000,
        timeout_secs: 2,
        ..Default::default()
    };
    let hooks = vec![revenue_os::config::WebhookSettings {
        name: "ops".into(),
        url: format!("http://127.0.0.1:{port}/in"),
        events: vec!["trigger_dead_lettered".into()],
        secret_env: "unused".into(),
    }];
    // The global webhook's secret, as a worker reads it from its environment.
    let globals =
        revenue_os::worker::periodic::GlobalHook::from_settings(&hooks, |_| Some(SECRET.into()));
    assert_eq!(globals.len(), 1);
    let service = revenue_os::worker::periodic::WebhookDelivery {
        store: db.store().clone(),
        globals,
        settings: notify,
        http: revenue_os::worker::webhook_http::WebhookHttp::new(Duration::from_secs(2)).unwrap(),
        deadline: Duration::from_secs(30),
    };
    // Two dead-lettered triggers' notifications, as the worker records them (the worker's
    // own path to them is the test above). No worker runs here: its delivery service, with
    // other settings, would route them first as often as not.
    for id in ["down-1", "down-2"] {
        let n = revenue_os::contract::Notification::new(
            revenue_os::contract::NotifyEvent::TriggerDeadLettered,
            format!("none:{id}"),
            None,
            Utc::now(),
        )
        .with_details(serde_json::json!({
            "message_id": id,
            "reason": "malformed",
            "detail": "not json",
            "routing_key": "trigger.any",
        }));
        assert!(db.store().record_notification(&n).await.unwrap());
    }
    let sender = tokio::spawn(async move {
        use revenue_os::worker::periodic::Periodic;
        loop {
            let _ = service.run_once().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Attempts fail while the receiver is down.
    eventually(30, "failed attempts", || async {
        (db.count(
            "SELECT count(*) FROM webhook_deliveries
             WHERE attempts >= 2 AND last_error IS NOT NULL AND delivered_at IS NULL",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        db.count("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NOT NULL")
            .await,
        0
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let inbox = receiver(listener);
    let got = wait_for(&inbox, 2, 30).await;
    for g in got.values() {
        assert_eq!(g.verify(&g.body), Ok(()));
        assert_eq!(g.json()["event"], "trigger_dead_lettered");
    }
    let attempts: i64 = db
        .count("SELECT min(attempts)::bigint FROM webhook_deliveries")
        .await;
    assert!(attempts >= 3, "{attempts}");
    sender.abort();
    db.cleanup().await;
}

/// The tenant's own webhook for every event, to this test's receiver.
async fn hook_every_event(db: &TestDb, tenant: Uuid, url: &str) {
    assert!(
        db.store()
            .add_webhook(&TenantWebhook {
                tenant_id: tenant,
                name: "ops".into(),
                url: url.to_owned(),
                events: vec!["*".into()],
                secret: SECRET.into(),
                created_at: Utc::now(),
            })
            .await
            .unwrap()
    );
}

/// Per (event, subject) of what the receiver got, every one verified; and per event.
fn tally(all: &[Got]) -> (BTreeMap<(String, String), usize>, BTreeMap<String, usize>) {
    let mut by_change: BTreeMap<(String, String), usize> = BTreeMap::new();
    for g in all {
        assert_eq!(g.verify(&g.body), Ok(()), "{}", g.json());
        assert_eq!(g.id, g.idempotency);
        let j = g.json();
        let text = j["text"].as_str().unwrap();
        assert!(
            !text.contains('\n') && text.contains("<https://console.example/"),
            "{text}"
        );
        *by_change
            .entry((
                j["event"].as_str().unwrap().to_owned(),
                j["subject"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    let events = by_change.keys().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k.0.clone()).or_default() += 1;
        m
    });
    (by_change, events)
}

/// The rest of the events, each from its real path: the watchdog sweep reverts an action
/// (three failed days) and escalates another (missing days), a quarantined load refuses a
/// row, and detection after that load finds a harmful drop. The sweeps, the detection and the
/// load each run twice; each event arrives once, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_an_escalation_a_refused_load_and_a_detected_deviation_arrive_once() {
    use crate::watchdog::{applied_action, days_pass, metric_days, value, watchdog_for};
    use revenue_os::watchdog;
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/revenue-os", listener.local_addr().unwrap());
    let inbox = receiver(listener);
    let mut s = settings(&b.prefix, &db);
    quick(&mut s);
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    let wd = watchdog_for(&b);

    // A revert: the condition failed on its consecutive days. Swept twice.
    let reverted = applied_action(&b, &db, "wh-revert").await;
    hook_every_event(&db, reverted.tenant, &url).await;
    let n = reverted.condition.consecutive_days.max(1) as usize;
    let failing = value(&reverted.condition, true);
    metric_days(
        &db,
        reverted.tenant,
        &reverted.condition.metric_id,
        &vec![Some(failing); n],
    )
    .await;
    let first = watchdog::sweep(db.store(), &wd, Some(reverted.tenant))
        .await
        .unwrap();
    assert_eq!(
        first[0].decision.evaluation.verdict,
        WatchVerdict::Abort,
        "{first:?}"
    );
    watchdog::sweep(db.store(), &wd, Some(reverted.tenant))
        .await
        .unwrap();

    // An escalation: the condition's metric is missing on days the tenant has. Swept twice.
    let escalated = applied_action(&b, &db, "wh-escalate").await;
    hook_every_event(&db, escalated.tenant, &url).await;
    let f = Some(value(&escalated.condition, true));
    metric_days(&db, escalated.tenant, &escalated.condition.metric_id, &[f]).await;
    days_pass(&db, escalated.tenant, &escalated.condition.metric_id, 3).await;
    for _ in 0..2 {
        let done = watchdog::sweep(db.store(), &wd, Some(escalated.tenant))
            .await
            .unwrap();
        assert!(
            done.iter()
                .all(|d| d.decision.evaluation.verdict == WatchVerdict::Escalate),
            "{done:?}"
        );
    }

    // A quarantined load of 60 days of pipeline_total ending yesterday, the newest day down
    // 40% (the calibration's generator), and one row it refuses. Loaded twice (the second
    // a replay); detection after it, twice (the worker's load follow-up detects too).
    let tenant = crate::common::amqp::import_tenant(&db).await;
    hook_every_event(&db, tenant, &url).await;
    use crate::deviations::synth;
    let yesterday = Utc::now().date_naive() - Days::days(1);
    let mut t = synth::tenant(&mut synth::Rng::new(0x2026_1204), 60);
    let pipeline = t
        .series
        .iter()
        .position(|(id, _)| *id == "pipeline_total")
        .unwrap();
    t.inject(pipeline);
    let shift = yesterday - t.newest;
    let mut csv = String::from("tenant_id,metric_id,date,value\n");
    for (d, v) in &t.series[pipeline].1 {
        csv.push_str(&format!("{tenant},pipeline_total,{},{v}\n", *d + shift));
    }
    csv.push_str(&format!("{tenant},pipeline_total,2026-02-30,5\n"));
    let rows = csv.lines().count() as i64 - 1;
    let opts = revenue_os::app::ingest::IngestOptions {
        kind: revenue_os::ingest::Kind::Metrics,
        format: revenue_os::ingest::Format::Csv,
        source: "nightly/metrics.csv".into(),
        load_id: None,
        snapshot: false,
        quarantine: true,
        trigger: false,
        limits: revenue_os::ingest::Limits::default(),
    };
    let mut load_ids = Vec::new();
    for _ in 0..2 {
        let (report, replayed) = revenue_os::app::ingest::load(
            db.store(),
            &catalog(),
            std::io::Cursor::new(csv.clone().into_bytes()),
            &opts,
        )
        .await
        .unwrap();
        assert_eq!((report.rows, report.rejected), (rows, 1));
        load_ids.push((report.load_id, replayed));
    }
    assert!(!load_ids[0].1 && load_ids[1].1, "{load_ids:?}");
    assert_eq!(load_ids[0].0, load_ids[1].0);
    for _ in 0..2 {
        let pass = revenue_os::worker::deviation::detect_for(
            db.store(),
            &catalog(),
            &s.deviation,
            &b.topology,
            &[tenant],
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(pass.triggered, vec![tenant], "{pass:?}");
    }

    let got = wait_for(&inbox, 4, 60).await;
    // Long enough for a second delivery of anything to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = inbox.lock().unwrap().clone();
    let (by_change, events) = tally(&all);
    assert!(by_change.values().all(|n| *n == 1), "{by_change:?}");
    assert_eq!(
        events,
        BTreeMap::from([
            ("deviation_detected".to_owned(), 1),
            ("load_rejected".to_owned(), 1),
            ("revert_published".to_owned(), 1),
            ("watchdog_escalation".to_owned(), 1),
        ]),
        "{by_change:?}"
    );
    let of = |event: &str| {
        got.values()
            .map(Got::json)
            .find(|j| j["event"] == event)
            .unwrap()
    };
    let revert = of("revert_published");
    assert_eq!(revert["tenant_id"], reverted.tenant.to_string());
    assert_eq!(revert["action_id"], reverted.action_id);
    assert_eq!(
        revert["subject"],
        format!("{}:{}", reverted.cycle_id, reverted.action_id)
    );
    assert_eq!(revert["details"]["new_value"], reverted.before);
    assert!(
        revert["text"]
            .as_str()
            .unwrap()
            .contains(&format!("/cycles/{}", reverted.cycle_id)),
        "{revert}"
    );
    let escalation = of("watchdog_escalation");
    assert_eq!(escalation["tenant_id"], escalated.tenant.to_string());
    assert_eq!(escalation["action_id"], escalated.action_id);
    let rejected = of("load_rejected");
    assert_eq!(rejected["tenant_id"], tenant.to_string());
    assert_eq!(rejected["details"]["load_id"], load_ids[0].0);
    assert_eq!(rejected["details"]["rejected"], 1);
    assert_eq!(rejected["details"]["source"], "nightly/metrics.csv");
    let deviation = of("deviation_detected");
    assert_eq!(deviation["tenant_id"], tenant.to_string());
    assert_eq!(deviation["details"]["metric_id"], "pipeline_total");
    assert_eq!(deviation["details"]["day"], yesterday.to_string());
    assert_eq!(
        db.count("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL")
            .await,
        0
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
