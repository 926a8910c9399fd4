//! Approvals on the real database: approve, reject, expire, supersede; a double approve makes
//! one outbox row; an approval racing the tenant's next cycle is safe; a stale hash is refused.

use crate::common::db::TestDb;
use crate::common::*;
use crate::cycle::request;
use chrono::{DateTime, Utc};
use revenue_os::broker::Topology;
use revenue_os::config::Settings;
use revenue_os::contract::KernelInput;
use revenue_os::store::*;
use revenue_os::worker::{PlanContext, Planner, TriggerPolicy};
use uuid::Uuid;

const HELD: &str = "routing.config_change.round_robin_enabled";

fn settings(db: &TestDb) -> Settings {
    let mut s = Settings::load_from(&[]).unwrap();
    s.database = db.settings.clone();
    s.amqp.prefix = "approvals".into();
    s
}

/// Runs one cycle through the worker's own policy (kernel, planner, approval hold).
async fn cycle(db: &TestDb, input: &KernelInput, message_id: &str, now: DateTime<Utc>) -> Uuid {
    let rules = rules();
    let planner = Planner::new(Topology::new("approvals", &catalog(), 5));
    let mut req = request(input, message_id);
    req.triggered_at = now;
    req.trigger.triggered_at = now.to_rfc3339();
    let pctx = PlanContext {
        tenant_id: req.tenant_id,
        message_id: message_id.into(),
        trigger: req.trigger.clone(),
    };
    let policy = TriggerPolicy {
        rules: &rules,
        planner: &planner,
        trigger: &pctx,
        now,
    };
    match db.store().run_cycle(&req, now, &policy).await.unwrap() {
        CycleOutcome::Recorded {
            cycle_id,
            status: CycleStatus::Completed,
            ..
        } => cycle_id,
        other => panic!("{other:?}"),
    }
}

/// The example tenant with a policy that holds every routing action, and one cycle.
async fn held() -> (TestDb, KernelInput, Uuid, PendingApproval) {
    let (db, input) = imported().await;
    let tenant = Uuid::parse_str(&input.tenant_id).unwrap();
    let policy = ApprovalPolicy {
        require: vec!["routing:*".into()],
        ..ApprovalPolicy::default()
    };
    assert!(
        db.store()
            .set_approval_policy(tenant, &policy)
            .await
            .unwrap()
    );
    let cycle_id = cycle(&db, &input, "held-1", fixture_now()).await;
    let pending = db.store().pending_approvals(Some(tenant)).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].action_id, HELD);
    assert!(pending[0].reason.as_deref().unwrap().contains("routing:*"));
    (db, input, cycle_id, pending[0].clone())
}

async fn outbox_rows(db: &TestDb, action_id: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) FROM outbox_messages WHERE action_id = '{action_id}'"
    ))
    .await
}

async fn decide(
    db: &TestDb,
    s: &Settings,
    p: &PendingApproval,
    r: ApprovalRequest,
) -> ApprovalOutcome {
    revenue_os::app::decide(db.store(), s, &catalog(), p.cycle_id, &p.action_id, r)
        .await
        .unwrap()
}

fn approve(p: &PendingApproval) -> ApprovalRequest {
    ApprovalRequest::Approve {
        by: "ops@example.com".into(),
        hash: p.hash.clone(),
    }
}

#[tokio::test]
async fn a_held_action_has_no_outbox_row_until_approved_once() {
    let (db, _, _, p) = held().await;
    let s = settings(&db);
    assert_eq!(outbox_rows(&db, HELD).await, 0, "held: nothing published");
    assert!(
        outbox_rows(&db, "campaigns.scale.cmp_002.budget_daily").await == 1,
        "the rest go out"
    );

    // A hash that is not the action's is refused and recorded.
    let stale = ApprovalRequest::Approve {
        by: "ops@example.com".into(),
        hash: "0".repeat(64),
    };
    assert!(matches!(
        decide(&db, &s, &p, stale).await,
        ApprovalOutcome::StaleHash { .. }
    ));
    assert_eq!(outbox_rows(&db, HELD).await, 0);

    let first = decide(&db, &s, &p, approve(&p)).await;
    let ApprovalOutcome::Approved { outbox } = first else {
        panic!("{first:?}")
    };
    assert_eq!(outbox.message.message_id, format!("{}:{HELD}", p.cycle_id));
    let again = decide(&db, &s, &p, approve(&p)).await;
    assert!(
        matches!(
            again,
            ApprovalOutcome::NotPending {
                status: revenue_os::contract::ActionStatus::Pending
            }
        ),
        "{again:?}"
    );
    assert_eq!(
        outbox_rows(&db, HELD).await,
        1,
        "a double approve makes one row"
    );
    let decisions = db
        .client()
        .await
        .query(
            "SELECT decision, decided_by, hash FROM approval_decisions ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = decisions.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            ("refused_stale".into(), "ops@example.com".into()),
            ("approved".into(), "ops@example.com".into())
        ]
    );
    assert_eq!(decisions[1].get::<_, String>(2), p.hash);
    db.cleanup().await;
}

#[tokio::test]
async fn a_rejection_records_its_reason() {
    let (db, _, _, p) = held().await;
    let s = settings(&db);
    let r = ApprovalRequest::Reject {
        by: "cfo".into(),
        hash: p.hash.clone(),
        reason: "not during the quarter close".into(),
    };
    assert_eq!(decide(&db, &s, &p, r).await, ApprovalOutcome::Rejected);
    assert_eq!(outbox_rows(&db, HELD).await, 0);
    let reason: String = db
        .client()
        .await
        .query_one(
            "SELECT reason FROM approval_decisions WHERE decision = 'rejected'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "not during the quarter close");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM actions WHERE action_id = '{HELD}' AND status = 'rejected'"
        ))
        .await,
        1
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_held_action_expires_after_its_ttl() {
    let (db, _, _, p) = held().await;
    let mut s = settings(&db);
    s.approval.ttl_hours = 0;
    assert_eq!(
        decide(&db, &s, &p, approve(&p)).await,
        ApprovalOutcome::Expired
    );
    assert_eq!(outbox_rows(&db, HELD).await, 0);
    // The sweep finds nothing left to expire.
    assert_eq!(
        revenue_os::approvals::sweep(db.store(), 0, Utc::now())
            .await
            .unwrap(),
        0
    );
    db.cleanup().await;
}

#[tokio::test]
async fn the_expiry_sweep_expires_what_waited_too_long() {
    let (db, _, _, _) = held().await;
    assert_eq!(
        revenue_os::approvals::sweep(db.store(), 24, Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        revenue_os::approvals::sweep(db.store(), 0, Utc::now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM actions WHERE action_id = '{HELD}' AND status = 'expired'"
        ))
        .await,
        1
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_newer_completed_cycle_supersedes_it() {
    let (db, input, _, p) = held().await;
    let s = settings(&db);
    cycle(
        &db,
        &input,
        "held-2",
        fixture_now() + chrono::Duration::hours(12),
    )
    .await;
    assert_eq!(
        decide(&db, &s, &p, approve(&p)).await,
        ApprovalOutcome::Superseded
    );
    assert_eq!(
        outbox_rows(&db, HELD).await,
        0,
        "the newer cycle holds its own copy"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_racing_the_next_cycle_is_safe() {
    for round in 0..4 {
        let (db, input, first, p) = held().await;
        let s = settings(&db);
        let later = fixture_now() + chrono::Duration::hours(12);
        let store = db.store().clone();
        let id = format!("race-{round}");
        let (approved, _) = tokio::join!(
            decide(&db, &s, &p, approve(&p)),
            cycle(&db, &input, &id, later)
        );
        let rows = db
            .count(&format!(
                "SELECT count(*) FROM outbox WHERE action_id = '{HELD}' AND cycle_id = '{first}'"
            ))
            .await;
        match approved {
            // The approval went first: its row exists, the new cycle holds its own copy.
            ApprovalOutcome::Approved { .. } => assert_eq!(rows, 1),
            // The cycle went first: the old action is superseded, nothing published.
            ApprovalOutcome::Superseded => assert_eq!(rows, 0),
            other => panic!("{other:?}"),
        }
        let pending = store.pending_approvals(None).await.unwrap();
        assert_eq!(pending.len(), 1, "the new cycle's held copy waits");
        assert_ne!(pending[0].cycle_id, first);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_cli_approves_what_it_shows_and_refuses_the_second_time() {
    let (db, _, _, p) = held().await;
    let target = format!("{}:{}", p.cycle_id, p.action_id);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
            .args(args)
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap()
    };
    let listed = run(&["approvals", "--tenant", &p.tenant_id.to_string()]);
    assert!(listed.status.success(), "{listed:?}");
    assert!(String::from_utf8_lossy(&listed.stderr).contains(&format!("--hash {}", p.hash)));
    let first = run(&["approve", &target, "--by", "ops"]);
    assert!(first.status.success(), "{first:?}");
    let body: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(body["outcome"], "approved");
    let set = run(&[
        "tenant",
        "policy",
        "--tenant",
        &p.tenant_id.to_string(),
        "--require",
        "pricing:*",
        "--max-added-spend",
        "100",
    ]);
    assert!(set.status.success(), "{set:?}");
    let shown: serde_json::Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(
        shown["approval_policy"]["require"],
        serde_json::json!(["pricing:*"])
    );
    assert_eq!(shown["approval_policy"]["max_added_spend"], 100.0);
    let second = run(&["approve", &target, "--by", "ops", "--hash", &p.hash]);
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    assert_eq!(outbox_rows(&db, HELD).await, 1);
    db.cleanup().await;
}
