//! record_reports: a batch judged and written set-wise ends exactly where the same reports,
//! recorded one by one, end; a report recorded before makes it fail whole, for the lone path.

use crate::common::db::TestDb;
use crate::common::*;
use crate::cycle::{policy, request};
use revenue_os::contract::*;
use revenue_os::results::Lifecycle;
use revenue_os::store::*;
use serde_json::{Value, json};
use uuid::Uuid;

/// The two tenants' ids, their cycles' requests (the same in every database), and the time
/// every report is received at.
struct Scene {
    inputs: Vec<KernelInput>,
    reqs: Vec<CycleRequest>,
}

fn scene() -> Scene {
    let inputs: Vec<KernelInput> = (0..2)
        .map(|_| {
            let mut input = fixture(DEMAND_BOUND);
            input.tenant_id = Uuid::new_v4().to_string();
            input
        })
        .collect();
    let reqs = inputs.iter().map(|i| request(i, "m-1")).collect();
    Scene { inputs, reqs }
}

/// The scene's tenants and cycles in `db`, every action published, and each tenant's action
/// subjects by priority.
async fn stage(db: &TestDb, s: &Scene) -> Vec<Vec<String>> {
    let mut subjects = vec![];
    for (input, req) in s.inputs.iter().zip(&s.reqs) {
        db.store().import(input, &catalog()).await.unwrap();
        db.store()
            .run_cycle(req, fixture_now(), &policy())
            .await
            .unwrap();
        let rows = db
            .client()
            .await
            .query(
                "SELECT cycle_id::text || ':' || action_id FROM actions WHERE cycle_id = $1
                 ORDER BY priority",
                &[&req.cycle_id],
            )
            .await
            .unwrap();
        subjects.push(rows.iter().map(|r| r.get::<_, String>(0)).collect());
    }
    db.client()
        .await
        .batch_execute("UPDATE actions SET status = 'published'")
        .await
        .unwrap();
    subjects
}

fn report(id: &str, kind: &str, subject: &str, time: Option<&str>, data: Value) -> Report {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "test-executor",
        "type": format!("revenue_os.action.{kind}"),
        "subject": subject, "datacontenttype": "application/json", "data": data,
    });
    if let Some(t) = time {
        e["time"] = json!(t);
    }
    decode_report(&serde_json::to_vec(&e).unwrap()).unwrap()
}

/// Every row the reports can touch, in an order that does not depend on insert order across
/// actions, without the columns stamped with the server's clock.
async fn state(db: &TestDb) -> Vec<Value> {
    let c = db.client().await;
    let mut out = vec![];
    for sql in [
        "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'updated_at' - 'created_at'
                                   ORDER BY cycle_id, action_id), '[]')
         FROM actions t",
        "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'id' ORDER BY cycle_id, action_id, id), '[]')
         FROM action_reports t",
        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY tenant_id, subsystem, entity_id, field),
                         '[]')
         FROM lever_state t",
        "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'recorded_at' ORDER BY tenant_id, action_id),
                         '[]')
         FROM action_results t",
    ] {
        out.push(c.query_one(sql, &[]).await.unwrap().get(0));
    }
    out
}

#[tokio::test]
async fn a_batch_ends_where_the_same_reports_one_by_one_end() {
    let s = scene();
    let (lone, batched) = (TestDb::new().await, TestDb::new().await);
    let subjects = stage(&lone, &s).await;
    assert_eq!(stage(&batched, &s).await, subjects);
    let (a, b) = (&subjects[0], &subjects[1]);
    assert!(a.len() >= 4 && b.len() >= 2, "{a:?} {b:?}");
    let (ta, tb) = (json!(s.inputs[0].tenant_id), json!(s.inputs[1].tenant_id));
    let revert = a[3].replacen(':', ":revert:", 1);
    let ghost = format!("{}:campaigns.scale.nothing.budget_daily", Uuid::new_v4());
    let applied = |t: &Value, after: f64| json!({"tenant_id": t, "before": 1.0, "after": after});
    let t1 = Some("2026-11-26T06:01:00Z");
    let t2 = Some("2026-11-26T06:02:00Z");
    let outcome = json!({"tenant_id": ta, "target_metric": "pipeline_value",
        "baseline_value": 100.0, "observed_value": 120.0, "delta": 20.0, "confidence": 0.8,
        "outcome": "successful"});
    // Recorded before the batch, in both databases.
    let earlier = report("pre-1", "acknowledged", &b[1], t1, json!({"tenant_id": tb}));
    let mut reports = vec![
        report(
            "a0-ack",
            "acknowledged",
            &a[0],
            t1,
            json!({"tenant_id": ta}),
        ),
        report("b1-app", "applied", &b[1], t2, applied(&tb, 3.0)),
        report("a0-app", "applied", &a[0], t2, applied(&ta, 2.0)),
        // The same event again inside the batch.
        report("a0-app", "applied", &a[0], t2, applied(&ta, 2.0)),
        report("a1-app", "applied", &a[1], None, applied(&ta, 5.0)),
        report("a0-out", "outcome", &a[0], t2, outcome),
        // After `applied`: not a step the lifecycle allows.
        report(
            "a1-fail",
            "failed",
            &a[1],
            t2,
            json!({"tenant_id": ta, "reason": "x"}),
        ),
        report(
            "a2-ack",
            "acknowledged",
            &a[2],
            t1,
            json!({"tenant_id": ta}),
        ),
        report(
            "a2-ack2",
            "acknowledged",
            &a[2],
            t2,
            json!({"tenant_id": ta}),
        ),
        // Tenant a's report on tenant b's action.
        report("wrong", "acknowledged", &b[0], t1, json!({"tenant_id": ta})),
        report(
            "ghost",
            "acknowledged",
            &ghost,
            t1,
            json!({"tenant_id": ta}),
        ),
        report("a3-rev", "applied", &revert, t2, applied(&ta, 1.0)),
    ];
    let now = fixture_now();
    for db in [&lone, &batched] {
        db.store()
            .record_report(&earlier, now, &Lifecycle)
            .await
            .unwrap();
        // The watchdog's revert of a3, under way.
        db.client()
            .await
            .execute(
                "UPDATE actions SET status = 'reverting'
                 WHERE cycle_id::text || ':' || action_id = $1",
                &[&a[3]],
            )
            .await
            .unwrap();
    }
    let mut one_by_one = vec![];
    for r in &reports {
        one_by_one.push(
            lone.store()
                .record_report(r, now, &Lifecycle)
                .await
                .unwrap(),
        );
    }
    let batch: Vec<(&Report, _)> = reports.iter().map(|r| (r, now)).collect();
    let together = batched
        .store()
        .record_reports(&batch, &Lifecycle)
        .await
        .unwrap();
    assert_eq!(together, one_by_one);
    let recorded = |before, after, result| ReportOutcome::Recorded {
        before,
        after,
        result,
    };
    use ActionStatus as S;
    assert_eq!(
        together,
        vec![
            recorded(S::Published, S::Acknowledged, ReportResult::Applied),
            recorded(S::Acknowledged, S::Applied, ReportResult::Applied),
            recorded(S::Acknowledged, S::Applied, ReportResult::Applied),
            ReportOutcome::Duplicate,
            recorded(S::Published, S::Applied, ReportResult::Applied),
            recorded(S::Applied, S::Concluded, ReportResult::Applied),
            recorded(S::Applied, S::Applied, ReportResult::InvalidTransition),
            recorded(S::Published, S::Acknowledged, ReportResult::Applied),
            recorded(S::Acknowledged, S::Acknowledged, ReportResult::Late),
            ReportOutcome::WrongTenant,
            ReportOutcome::UnknownAction,
            recorded(S::Reverting, S::Reverted, ReportResult::Applied),
        ]
    );
    let (l, t) = (state(&lone).await, state(&batched).await);
    assert_eq!(l, t);
    // The levers, the outcome row and the applied values are there, not just equal.
    assert_eq!(l[2].as_array().map(Vec::len), Some(4), "{}", l[2]);
    assert_eq!(l[3].as_array().map(Vec::len), Some(1), "{}", l[3]);
    // In one transaction.
    assert_eq!(
        batched
            .count(
                "SELECT count(DISTINCT xmin::text) FROM action_reports WHERE event_id <> 'pre-1'"
            )
            .await,
        1
    );

    // A report recorded before, in the batch: the insert's conflict check catches it, the
    // batch fails whole, and the lone path, which the caller falls back to, calls it a
    // duplicate. Also when the row is another tenant's, which the batch's scope cannot see.
    batched
        .client()
        .await
        .execute(
            "INSERT INTO action_reports (tenant_id, cycle_id, action_id, source, event_id, type,
                 received_at, status_before, status_after, result, event)
             SELECT tenant_id, cycle_id, action_id, 'test-executor', 'hidden', 'acknowledged',
                    now(), 'published', 'published', 'late', '{}'
             FROM actions WHERE cycle_id::text || ':' || action_id = $1",
            &[&b[0]],
        )
        .await
        .unwrap();
    for repeat in [
        report("pre-1", "acknowledged", &b[1], t1, json!({"tenant_id": tb})),
        report(
            "hidden",
            "acknowledged",
            &a[1],
            t1,
            json!({"tenant_id": ta}),
        ),
    ] {
        reports = vec![
            report("a2-app", "applied", &a[2], t2, applied(&ta, 4.0)),
            repeat,
        ];
        let before = state(&batched).await;
        let batch: Vec<(&Report, _)> = reports.iter().map(|r| (r, now)).collect();
        let err = batched
            .store()
            .record_reports(&batch, &Lifecycle)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(err.is_retryable() && !err.is_unreachable());
        assert_eq!(
            state(&batched).await,
            before,
            "nothing of the batch is written"
        );
        assert_eq!(
            batched
                .store()
                .record_report(&reports[1], now, &Lifecycle)
                .await
                .unwrap(),
            ReportOutcome::Duplicate
        );
    }
    lone.cleanup().await;
    batched.cleanup().await;
}
