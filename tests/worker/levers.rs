//! The product remembers what executors set: after an `applied` report for a CRM field the
//! next cycle shows the known current value and proposes no change equal to it; after a
//! failed outcome the revert names the exact prior value; and `assemble --levers-out` plus
//! `kernel --levers` reproduce a cycle byte for byte.

use crate::common::amqp::{RunningWorker, TestBroker, WINDOW, eventually, settings};
use crate::common::db::TestDb;
use crate::reports::{cycle_with_actions, event, publish_report};
use revenue_os::contract::{Action, ActionType};
use revenue_os::worker::Hooks;
use serde_json::{Value, json};
use uuid::Uuid;

const SLA: &str = "crm.config_change.follow_up_sla_hours";

async fn actions_of(db: &TestDb, message_id: &str) -> (Uuid, Vec<Action>) {
    let rows = db
        .client()
        .await
        .query(
            "SELECT a.cycle_id, a.action FROM actions a JOIN cycles c USING (cycle_id)
             WHERE c.message_id = $1 ORDER BY a.priority",
            &[&message_id],
        )
        .await
        .unwrap();
    let cycle = rows.first().map(|r| r.get(0)).unwrap_or_else(Uuid::nil);
    (
        cycle,
        rows.iter()
            .map(|r| serde_json::from_value(r.get(1)).unwrap())
            .collect(),
    )
}

async fn next_cycle(
    b: &TestBroker,
    db: &TestDb,
    tenant: Uuid,
    message_id: &str,
) -> (Uuid, Vec<Action>) {
    b.trigger(tenant, Some(WINDOW), message_id).await;
    eventually(30, message_id, || async {
        (db.count(&format!(
            "SELECT count(*) FROM cycles WHERE message_id = '{message_id}' AND status = 'completed'"
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
    actions_of(db, message_id).await
}

async fn report(b: &TestBroker, db: &TestDb, id: &str, kind: &str, subject: &str, data: Value) {
    publish_report(b, id, event(id, kind, subject, data)).await;
    eventually(20, id, || async {
        (db.count(&format!(
            "SELECT count(*) FROM action_reports WHERE event_id = '{id}'"
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_crm_value_is_shown_not_reproposed_and_restored_exactly() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let mut s = settings(&b.prefix, &db);
    s.kernel.min_cycle_interval_hours = 0;
    s.watchdog.interval_secs = 0;
    let w = RunningWorker::start(s, &db, Hooks::default());
    let (tenant, _) = cycle_with_actions(&b, &db, "lv-1").await;
    let (cycle1, first) = actions_of(&db, "lv-1").await;
    let sla = first
        .iter()
        .find(|a| a.action_id == SLA)
        .expect("an SLA change");
    let (before, after) = (json!(24), sla.proposed_change.new_value.clone());
    let t = tenant.to_string();
    let subject = format!("{cycle1}:{SLA}");
    report(
        &b,
        &db,
        "lv-ack",
        "acknowledged",
        &subject,
        json!({"tenant_id": t}),
    )
    .await;
    report(
        &b,
        &db,
        "lv-applied",
        "applied",
        &subject,
        json!({"tenant_id": t, "before": before, "after": after}),
    )
    .await;

    // The next cycle knows the value: shown as current, never proposed again.
    let (_, second) = next_cycle(&b, &db, tenant, "lv-2").await;
    for a in second
        .iter()
        .filter(|a| a.proposed_change.field == "follow_up_sla_hours")
    {
        assert_eq!(a.proposed_change.current_value, after, "{a:?}");
        assert_ne!(a.proposed_change.new_value, after, "{a:?}");
    }

    // The executor measured it failed: the revert restores exactly what was there before.
    report(
        &b,
        &db,
        "lv-outcome",
        "outcome",
        &subject,
        json!({"tenant_id": t, "target_metric": "speed_to_lead_hours", "baseline_value": 6.0,
               "observed_value": 9.0, "delta": 3.0, "confidence": 0.9, "outcome": "failed"}),
    )
    .await;
    let (_, third) = next_cycle(&b, &db, tenant, "lv-3").await;
    let revert = third
        .iter()
        .find(|a| a.kind == ActionType::Revert && a.proposed_change.field == "follow_up_sla_hours")
        .unwrap_or_else(|| panic!("a revert of the SLA: {third:#?}"));
    assert_eq!(revert.proposed_change.new_value, before);
    assert_eq!(revert.proposed_change.current_value, after);
    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemble_and_kernel_with_levers_reproduce_a_cycle() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let mut s = settings(&b.prefix, &db);
    s.kernel.min_cycle_interval_hours = 0;
    s.watchdog.interval_secs = 0;
    let w = RunningWorker::start(s, &db, Hooks::default());
    let (tenant, subjects) = cycle_with_actions(&b, &db, "rp-1").await;
    let t = tenant.to_string();
    for (i, subject) in subjects.iter().enumerate() {
        let id = format!("rp-applied-{i}");
        report(
            &b,
            &db,
            &id,
            "applied",
            subject,
            json!({"tenant_id": t, "before": 1, "after": 2}),
        )
        .await;
    }
    next_cycle(&b, &db, tenant, "rp-2").await;
    w.stop().await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT output, trigger->>'triggered_at',
                    to_char(executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM cycles WHERE message_id = 'rp-2'",
            &[],
        )
        .await
        .unwrap();
    let (stored, triggered_at, executed_at): (Value, String, String) =
        (row.get(0), row.get(1), row.get(2));
    assert!(db.count("SELECT count(*) FROM lever_state").await > 0);

    let dir = std::env::temp_dir().join(format!("ros-repro-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, levers) = (dir.join("input.json"), dir.join("levers.json"));
    let bin = env!("CARGO_BIN_EXE_revenue-os");
    let assembled = std::process::Command::new(bin)
        .args([
            "assemble", "--tenant", &t, "--start", WINDOW.0, "--end", WINDOW.1,
        ])
        .args([
            "--trigger-type",
            "manual",
            "--trigger-source",
            "test",
            "--now",
            &triggered_at,
        ])
        .arg("--levers-out")
        .arg(&levers)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(assembled.status.success(), "{assembled:?}");
    std::fs::write(&input, &assembled.stdout).unwrap();
    let decided = std::process::Command::new(bin)
        .arg("kernel")
        .arg(&input)
        .args(["--now", &executed_at])
        .arg("--levers")
        .arg(&levers)
        .output()
        .unwrap();
    assert!(decided.status.success(), "{decided:?}");
    let mut offline: Value = serde_json::from_slice(&decided.stdout).unwrap();
    let mut online = stored;
    for v in [&mut offline, &mut online] {
        v["cycle_id"] = Value::Null;
        v["executed_at"] = Value::Null;
    }
    assert_eq!(
        serde_json::to_string_pretty(&offline).unwrap(),
        serde_json::to_string_pretty(&online).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
    b.cleanup().await;
    db.cleanup().await;
}
