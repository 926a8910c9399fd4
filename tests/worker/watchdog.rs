//! The watchdog on the real services: a condition met on 3 consecutive days publishes exactly
//! one revert with the exact prior value (two sweepers at once, one crashed mid-sweep);
//! failed-failed-passed-failed-failed reverts nothing; missing days escalate; shadow mode
//! publishes nothing and counts; nothing is evaluated before a change's first full day, also
//! for actions watched from their confirm.

use crate::common::amqp::{RunningWorker, TestBroker, eventually, settings};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, free_port, get, sigterm_and_wait, worker_command};
use crate::reports::{cycle_with_actions, event, publish_report};
use chrono::{NaiveDate, Utc};
use revenue_os::contract::{AbortCondition, Action, ActionMessage, Operator};
use revenue_os::store::{WatchDecision, WatchFacts, WatchNeeds, WatchPolicy, WatchVerdict};
use revenue_os::watchdog::{self, Watchdog};
use revenue_os::worker::Hooks;
use serde_json::{Value, json};
use uuid::Uuid;

/// An action the executor reported applied on 11-25, with its first abort condition.
pub struct Applied {
    pub tenant: Uuid,
    pub cycle_id: Uuid,
    pub action_id: String,
    pub condition: AbortCondition,
    pub before: Value,
    pub after: Value,
}

pub async fn applied_action(b: &TestBroker, db: &TestDb, message_id: &str) -> Applied {
    let (tenant, _) = cycle_with_actions(b, db, message_id).await;
    let rows = db
        .client()
        .await
        .query(
            "SELECT a.cycle_id, a.action FROM actions a JOIN cycles c USING (cycle_id)
             WHERE c.message_id = $1 AND a.type <> 'experiment' ORDER BY a.priority",
            &[&message_id],
        )
        .await
        .unwrap();
    let (cycle_id, action): (Uuid, Action) = rows
        .iter()
        .map(|r| (r.get(0), serde_json::from_value(r.get(1)).unwrap()))
        .find(|(_, a): &(Uuid, Action)| !a.guardrails.abort_conditions.is_empty())
        .expect("an action with an abort condition");
    let before = match &action.proposed_change.current_value {
        Value::Null => json!(24),
        v => v.clone(),
    };
    let after = action.proposed_change.new_value.clone();
    let subject = format!("{cycle_id}:{}", action.action_id);
    let mut body: Value = serde_json::from_slice(&event(
        &format!("{message_id}-applied"),
        "applied",
        &subject,
        json!({"tenant_id": tenant.to_string(), "before": before, "after": after}),
    ))
    .unwrap();
    body["time"] = json!("2026-11-25T12:00:00Z");
    publish_report(
        b,
        &format!("{message_id}-applied"),
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    eventually(20, "applied", || async {
        (db.count(&format!(
            "SELECT count(*) FROM actions WHERE status = 'applied' AND action_id = '{}'",
            action.action_id
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
    Applied {
        tenant,
        cycle_id,
        condition: action.guardrails.abort_conditions[0].clone(),
        action_id: action.action_id,
        before,
        after,
    }
}

/// A value that makes the condition hold, or not.
pub fn value(c: &AbortCondition, failing: bool) -> f64 {
    let above = matches!(c.operator, Operator::Gt | Operator::Ge);
    let t = c.threshold;
    let step = t.abs().max(1.0) * 0.2;
    if above == failing { t + step } else { t - step }
}

/// The months of `days` in metric_snapshots, as every writer asks for them (migrations/V17).
pub async fn ensure_months(c: &tokio_postgres::Client, days: &[NaiveDate]) {
    c.execute(
        "SELECT revenue_os.ensure_month_partitions('metric_snapshots', $1)",
        &[&days],
    )
    .await
    .unwrap();
}

/// Daily values of `metric` from 11-26 on (`None`: no row that day).
pub async fn metric_days(db: &TestDb, tenant: Uuid, metric: &str, values: &[Option<f64>]) {
    let c = db.client().await;
    let first = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let days: Vec<NaiveDate> = (0..values.len() as i64)
        .map(|i| first + chrono::Duration::days(i))
        .collect();
    ensure_months(&c, &days).await;
    for (i, v) in values.iter().enumerate() {
        let date = first + chrono::Duration::days(i as i64);
        let Some(v) = v else { continue };
        c.execute(
            "INSERT INTO metric_snapshots (tenant_id, metric_id, date, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, metric_id, date, dimension) DO UPDATE SET value = EXCLUDED.value",
            &[&tenant, &metric, &date, v],
        )
        .await
        .unwrap();
    }
}

/// Values that pass for every other abort condition of the action, on `n` days.
async fn others_pass(db: &TestDb, a: &Applied, n: usize) {
    let action: Action = serde_json::from_value(
        db.client()
            .await
            .query_one(
                "SELECT action FROM actions WHERE action_id = $1",
                &[&a.action_id],
            )
            .await
            .unwrap()
            .get(0),
    )
    .unwrap();
    for c in &action.guardrails.abort_conditions[1..] {
        if c.metric_id != a.condition.metric_id {
            metric_days(db, a.tenant, &c.metric_id, &vec![Some(value(c, false)); n]).await;
        }
    }
}

/// Another metric on every day, so the tenant's newest metric day moves on.
pub async fn days_pass(db: &TestDb, tenant: Uuid, condition_metric: &str, n: usize) {
    let other = if condition_metric == "leads_created" {
        "spend_total"
    } else {
        "leads_created"
    };
    metric_days(db, tenant, other, &vec![Some(1.0); n]).await;
}

pub fn watchdog_for(b: &TestBroker) -> Watchdog {
    Watchdog {
        topology: b.topology.clone(),
        clock: revenue_os::clock::Clock::system(),
    }
}

pub fn quiet(db: &TestDb, b: &TestBroker) -> revenue_os::config::Settings {
    let mut s = settings(&b.prefix, db);
    s.watchdog.interval_secs = 0; // the test sweeps
    s
}

struct Crash;

impl WatchPolicy for Crash {
    fn unwatched_types(&self) -> Vec<&'static str> {
        vec!["experiment"]
    }

    fn needs(&self, action: &Action, _: chrono::DateTime<Utc>) -> WatchNeeds {
        WatchNeeds {
            metrics: vec![action.expected_impact.metric_id.clone()],
            from: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
        }
    }

    fn decide(&self, _: &WatchFacts) -> WatchDecision {
        panic!("worker killed mid-sweep")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_failed_days_publish_exactly_one_revert_with_the_prior_value() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let executors = b.collect_actions().await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let a = applied_action(&b, &db, "wd-revert").await;
    let failing = value(&a.condition, true);
    let n = a.condition.consecutive_days.max(1) as usize;
    metric_days(
        &db,
        a.tenant,
        &a.condition.metric_id,
        &vec![Some(failing); n],
    )
    .await;

    // A sweep that dies after claiming the action leaves nothing behind.
    let store = db.store().clone();
    let crashed =
        tokio::spawn(async move { store.watch_next(None, &Crash, Utc::now()).await }).await;
    assert!(crashed.unwrap_err().is_panic());
    assert_eq!(
        db.count("SELECT count(*) FROM watchdog_evaluations").await,
        0
    );

    // Two sweepers at once, then a third later: one revert.
    let wd = watchdog_for(&b);
    let (x, y) = tokio::join!(
        watchdog::sweep(db.store(), &wd, None),
        watchdog::sweep(db.store(), &wd, Some(a.tenant))
    );
    assert_eq!(x.unwrap().len() + y.unwrap().len(), 1, "evaluated once");
    assert!(
        watchdog::sweep(db.store(), &wd, None)
            .await
            .unwrap()
            .is_empty()
    );
    let reverts = db
        .client()
        .await
        .query(
            "SELECT body, routing_key FROM outbox WHERE message_id LIKE '%:revert:%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(reverts.len(), 1);
    let msg: ActionMessage = serde_json::from_slice(&reverts[0].get::<_, Vec<u8>>(0)).unwrap();
    assert_eq!(msg.action.kind.as_str(), "revert");
    assert_eq!(
        msg.action.proposed_change.new_value, a.before,
        "the exact prior value"
    );
    assert_eq!(msg.action.proposed_change.current_value, a.after);
    assert_eq!(
        reverts[0].get::<_, String>(1),
        format!("revert.{}", a.tenant)
    );
    let (status, sentence): (String, String) = {
        let r = db
            .client()
            .await
            .query_one(
                "SELECT a.status, e.sentence FROM actions a
                 JOIN watchdog_evaluations e USING (cycle_id, action_id)
                 WHERE a.action_id = $1 AND e.verdict = 'abort'",
                &[&a.action_id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(status, "reverting");
    assert!(
        sentence.contains(&format!("for {n} consecutive days; reverting")),
        "{sentence}"
    );
    let learned: String = db
        .client()
        .await
        .query_one(
            "SELECT outcome FROM action_results WHERE tenant_id = $1 AND action_id = $2",
            &[&a.tenant, &a.action_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        learned, "failed",
        "the kernel learns not to propose it again"
    );

    // The relay publishes it to the executors; their `applied` on the revert ends it.
    let exchange = b.topology.action_exchange(msg.action.owner_subsystem);
    let revert_id = format!("{}:revert:{}", a.cycle_id, a.action_id);
    eventually(20, "the revert reaches the executors", || async {
        executors[&exchange]
            .snapshot()
            .iter()
            .any(|m| m.message_id.as_deref() == Some(revert_id.as_str()))
            .then_some(())
    })
    .await;
    publish_report(
        &b,
        "wd-revert-done",
        event(
            "wd-revert-done",
            "applied",
            &revert_id,
            json!({"tenant_id": a.tenant.to_string(), "before": a.after, "after": a.before}),
        ),
    )
    .await;
    eventually(20, "reverted", || async {
        (db.count(&format!(
            "SELECT count(*) FROM actions WHERE status = 'reverted' AND action_id = '{}'",
            a.action_id
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
    let lever: Value = db
        .client()
        .await
        .query_one(
            "SELECT value FROM lever_state WHERE action_id = $1",
            &[&a.action_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lever, a.before, "the known value is the restored one");
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_failed_passed_failed_failed_reverts_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let mut a = applied_action(&b, &db, "wd-reset").await;
    a.condition.consecutive_days = a.condition.consecutive_days.max(3);
    let (f, p) = (
        Some(value(&a.condition, true)),
        Some(value(&a.condition, false)),
    );
    metric_days(&db, a.tenant, &a.condition.metric_id, &[f, f, p, f, f]).await;
    others_pass(&db, &a, 5).await;
    let done = watchdog::sweep(db.store(), &watchdog_for(&b), Some(a.tenant))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].decision.evaluation.verdict, WatchVerdict::Watching);
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE message_id LIKE '%:revert:%'")
            .await,
        0
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// The tenant's newest metric day becomes 11-24, then 11-25 (a row of `metric` each), the
/// day before and the day of a change made on 11-25: no sweep evaluates anything, and the
/// tenant is not due.
async fn nothing_due_through_the_day_of_the_change(
    db: &TestDb,
    wd: &Watchdog,
    tenant: Uuid,
    metric: &str,
) {
    let c = db.client().await;
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    ensure_months(&c, &[day(24), day(25)]).await;
    for d in [24, 25] {
        c.execute(
            "INSERT INTO metric_snapshots (tenant_id, metric_id, date, value)
             VALUES ($1, $2, $3, 1) ON CONFLICT DO NOTHING",
            &[&tenant, &metric, &day(d)],
        )
        .await
        .unwrap();
        let done = watchdog::sweep(db.store(), wd, None).await.unwrap();
        assert!(done.is_empty(), "newest day 11-{d}: {done:?}");
        assert_eq!(
            db.count("SELECT count(*) FROM watchdog_evaluations").await,
            0
        );
        assert!(db.store().watch_due_tenants().await.unwrap().is_empty());
    }
}

/// Applied on 11-25 at noon: the first full day of the change is 11-26. Until the tenant's
/// data reaches it there is nothing to check, so no sweep evaluates the action (at 100,000
/// tenants the 300 s sweep did, for every action applied since the morning's cycles began).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_evaluated_before_the_first_full_day_of_the_change() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let a = applied_action(&b, &db, "wd-first-day").await;
    let wd = watchdog_for(&b);
    nothing_due_through_the_day_of_the_change(&db, &wd, a.tenant, &a.condition.metric_id).await;
    // 11-26 arrives: one evaluation, of that day.
    days_pass(&db, a.tenant, &a.condition.metric_id, 1).await;
    let done = watchdog::sweep(db.store(), &wd, None).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM watchdog_evaluations WHERE as_of = '2026-11-26'")
            .await,
        1
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// A tenant watched from the broker's confirm: its published actions are watched from the
/// day after that confirm, not on the day itself, and still after the retention service has
/// pruned the confirmed outbox rows (7 days, inside a 14-day window). Before V25 they were
/// evaluated on the day of the confirm, and once the rows were gone the claim found no start
/// and failed the tenant's whole batch as corrupt, at every sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_action_is_watched_from_the_day_after_its_confirm_even_once_pruned() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let (tenant, _) = cycle_with_actions(&b, &db, "wd-published").await;
    db.store()
        .set_watchdog_settings(tenant, None, Some(true))
        .await
        .unwrap();
    let c = db.client().await;
    // The cycle ran late on 11-24 and its messages were confirmed at noon on 11-25 (the broker
    // was down overnight): the watch starts from the confirm while the outbox holds it.
    c.batch_execute(
        "UPDATE cycles SET executed_at = '2026-11-24T23:00:00Z';
         UPDATE outbox SET published_at = '2026-11-25T12:00:00Z' WHERE published_at IS NOT NULL;
         UPDATE actions SET published_at = '2026-11-25T12:00:00Z' WHERE published_at IS NOT NULL",
    )
    .await
    .unwrap();
    let watched = db
        .count("SELECT count(*) FROM actions WHERE status = 'published' AND type <> 'experiment'")
        .await;
    assert!(watched > 0);
    let wd = watchdog_for(&b);
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let as_of = "SELECT count(*) FROM watchdog_evaluations WHERE as_of = $1";
    let evaluated_as_of = |d: u32| {
        let c = &c;
        async move {
            let n: i64 = c.query_one(as_of, &[&day(d)]).await.unwrap().get(0);
            n
        }
    };
    nothing_due_through_the_day_of_the_change(&db, &wd, tenant, "leads_created").await;
    // 11-26, the first full day after the confirm: every published action is evaluated.
    metric_days(&db, tenant, "leads_created", &[Some(1.0)]).await;
    assert_eq!(db.store().watch_due_tenants().await.unwrap(), vec![tenant]);
    watchdog::sweep(db.store(), &wd, None).await.unwrap();
    assert_eq!(evaluated_as_of(26).await, watched);
    // An action written before V27 kept its confirm only in its outbox row, which the
    // retention service forgets: made so here, 11-27 is still watched, from the run.
    c.batch_execute(
        "UPDATE actions SET message = NULL, outbox_id = NULL, published_at = NULL
          WHERE message IS NOT NULL",
    )
    .await
    .unwrap();
    assert!(db.store().prune_outbox(Utc::now(), 10_000).await.unwrap() > 0);
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE action_id IS NOT NULL")
            .await,
        0
    );
    metric_days(&db, tenant, "leads_created", &[Some(1.0), Some(1.0)]).await;
    watchdog::sweep(db.store(), &wd, None).await.unwrap();
    assert_eq!(evaluated_as_of(27).await, watched);
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_days_escalate_and_revert_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let escalations = b
        .collect(&b.topology.cycles_exchange, "watchdog.escalated.#")
        .await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let a = applied_action(&b, &db, "wd-missing").await;
    let f = Some(value(&a.condition, true));
    metric_days(&db, a.tenant, &a.condition.metric_id, &[f]).await;
    days_pass(&db, a.tenant, &a.condition.metric_id, 3).await;
    let done = watchdog::sweep(db.store(), &watchdog_for(&b), Some(a.tenant))
        .await
        .unwrap();
    assert_eq!(
        done[0].decision.evaluation.verdict,
        WatchVerdict::Escalate,
        "{done:?}"
    );
    assert!(
        done[0]
            .decision
            .evaluation
            .sentence
            .contains("escalated to a person")
    );
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE message_id LIKE '%:revert:%'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM actions WHERE escalated_at IS NOT NULL")
            .await,
        1
    );
    let got = escalations.wait_for(1, 20).await;
    assert_eq!(
        got[0].routing_key,
        format!("watchdog.escalated.{}", a.tenant)
    );
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_publishes_nothing_and_counts() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let port = free_port();
    // Killed if the test fails before the SIGTERM at its end.
    let mut worker = KillOnDrop(Some(
        worker_command(&b.prefix, &db, port)
            .env("REVENUE_OS__WATCHDOG__INTERVAL_SECS", "1")
            .spawn()
            .unwrap(),
    ));
    let a = applied_action(&b, &db, "wd-shadow").await;
    db.store()
        .set_watchdog_settings(a.tenant, Some(true), None)
        .await
        .unwrap();
    let n = a.condition.consecutive_days.max(1) as usize;
    metric_days(
        &db,
        a.tenant,
        &a.condition.metric_id,
        &vec![Some(value(&a.condition, true)); n],
    )
    .await;
    let page = eventually(30, "a would-revert counted", || async {
        let (_, page) = get(port, "/metrics").await?;
        page.lines()
            .any(|l| l.starts_with("revenue_os_watchdog_would_revert_total") && !l.ends_with(" 0"))
            .then_some(page)
    })
    .await;
    assert!(
        page.contains("revenue_os_watchdog_evaluations_total{result=\"would_revert\"}"),
        "{page}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE message_id LIKE '%:revert:%'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM watchdog_evaluations WHERE verdict = 'would_revert' AND mode = 'shadow'").await,
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM actions WHERE status = 'applied' AND action_id = '{}'",
            a.action_id
        ))
        .await,
        1
    );
    let child = worker.0.take().expect("worker running");
    assert!(sigterm_and_wait(child).await.success());
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_180_day_window_is_measured_against_180_days_before_the_change() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let w = RunningWorker::start(quiet(&db, &b), &db, Hooks::default());
    let a = applied_action(&b, &db, "wd-long-window").await;
    // Only the outcome matters here: a 180-day window and no abort condition to keep.
    let c = db.client().await;
    c.execute(
        "UPDATE actions SET action = jsonb_set(jsonb_set(action, '{observation_window_days}',
                '180'), '{guardrails,abort_conditions}', '[]')
         WHERE cycle_id = $1 AND action_id = $2",
        &[&a.cycle_id, &a.action_id],
    )
    .await
    .unwrap();
    let target: String = c
        .query_one(
            "SELECT action->'expected_impact'->>'metric_id' FROM actions
             WHERE cycle_id = $1 AND action_id = $2",
            &[&a.cycle_id, &a.action_id],
        )
        .await
        .unwrap()
        .get(0);
    // Applied on 11-25: 240 days of history before, 180 days after.
    let change = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let days: Vec<NaiveDate> = (-240i64..=180)
        .map(|i| change + chrono::Duration::days(i))
        .collect();
    ensure_months(&c, &days).await;
    for i in -240i64..=180 {
        let date = change + chrono::Duration::days(i);
        let value = if i <= 0 { 100.0 } else { 130.0 } + (i.rem_euclid(7)) as f64;
        c.execute(
            "INSERT INTO metric_snapshots (tenant_id, metric_id, date, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, metric_id, date, dimension) DO UPDATE SET value = EXCLUDED.value",
            &[&a.tenant, &target, &date, &value],
        )
        .await
        .unwrap();
    }
    let done = watchdog::sweep(db.store(), &watchdog_for(&b), Some(a.tenant))
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    let e = &done[0].decision.evaluation;
    assert_eq!(e.verdict, WatchVerdict::Measured, "{}", e.sentence);
    // Whole weeks of the window: 175 days before the change, not the 120 fetched before.
    let before = e.numbers["measured"]["before"].as_array().unwrap().len();
    assert_eq!(before as u64, watchdog::evaluate::sample_days(180));
    assert_eq!(before, 175);
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
