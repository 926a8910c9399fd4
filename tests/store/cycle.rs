//! run_cycle: concurrency, idempotency, every outcome recorded, outbox lifecycle.

use crate::common::db::TestDb;
use crate::common::*;
use chrono::{DateTime, Utc};
use revenue_os::contract::*;
use revenue_os::store::*;
use revenue_os::worker::Rules;
use uuid::Uuid;

/// A plan like the worker's: one message per action plus one cycle event.
fn plan(
    cycle_id: Uuid,
    result: &Result<KernelOutput, KernelError>,
    status: CycleStatus,
) -> Vec<OutboxMessage> {
    let mut out = Vec::new();
    if let Ok(o) = result {
        for a in &o.actions {
            out.push(OutboxMessage {
                exchange: "test.actions".into(),
                routing_key: a.owner_subsystem.as_str().into(),
                message_id: format!("{cycle_id}:{}", a.action_id),
                headers: serde_json::json!({"tenant_id": o.tenant_id}),
                body: serde_json::to_vec(a).unwrap(),
                action_id: Some(a.action_id.clone()),
                stored: StoredBody::Verbatim,
            });
        }
    }
    out.push(OutboxMessage {
        exchange: "test.cycles".into(),
        routing_key: status.as_str().into(),
        message_id: format!("{cycle_id}:cycle"),
        headers: serde_json::json!({}),
        body: b"{}".to_vec(),
        action_id: None,
        stored: StoredBody::Verbatim,
    });
    out
}

/// The worker's rules (admission, the kernel, the skip reason) with the plan above.
pub struct Policy(Rules);

impl CyclePolicy for Policy {
    fn check(&self, req: &CycleRequest) -> Result<(), KernelError> {
        self.0.check_window(req.window)
    }

    fn admit(&self, last: Option<&LastCycle>, now: DateTime<Utc>) -> Result<(), KernelError> {
        self.0.admit(last, now)
    }

    fn decide(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: DateTime<Utc>,
        cycle_id: Uuid,
    ) -> Result<KernelOutput, KernelError> {
        self.0.decide(input, levers, now, cycle_id)
    }

    fn skip_reason(&self, error: &KernelError) -> Option<&'static str> {
        revenue_os::kernel::skip_reason(error)
    }

    fn plan(
        &self,
        cycle_id: Uuid,
        result: &Result<KernelOutput, KernelError>,
        status: CycleStatus,
        _: &ApprovalFacts,
    ) -> Plan {
        Plan {
            messages: plan(cycle_id, result, status),
            held: vec![],
        }
    }
}

pub fn policy() -> Policy {
    Policy(rules())
}

pub fn request(input: &KernelInput, message_id: &str) -> CycleRequest {
    let triggered_at = parse_timestamp(&input.trigger.triggered_at).unwrap();
    CycleRequest {
        message_id: message_id.into(),
        tenant_id: Uuid::parse_str(&input.tenant_id).unwrap(),
        trigger: input.trigger.clone(),
        triggered_at,
        window: DateRange::parse(&input.analysis_window).unwrap(),
        cycle_id: Uuid::new_v4(),
    }
}

/// One run_cycle at the fixture's clock, with the worker's rules from default settings.
pub async fn run(store: &Store, req: &CycleRequest) -> CycleOutcome {
    store
        .run_cycle(req, fixture_now(), &policy())
        .await
        .unwrap()
}

/// These requests run_cycle'd all at once, each on its own task; outcomes in request order.
async fn run_parallel(store: &Store, reqs: Vec<CycleRequest>) -> Vec<CycleOutcome> {
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|req| {
            let store = store.clone();
            tokio::spawn(async move { run(&store, &req).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[test]
fn run_cycle_future_is_send() {
    fn is_send<T: Send>(_: &T) {}
    let store: Option<Store> = None;
    if let Some(s) = store {
        let input = fixture(DEMAND_BOUND);
        let req = request(&input, "m");
        let p = policy();
        let f = s.run_cycle(&req, fixture_now(), &p);
        is_send(&f);
    }
}

#[tokio::test]
async fn a_cycle_is_recorded_with_actions_and_outbox_rows() {
    let (db, input) = imported().await;
    let req = request(&input, "msg-1");
    let out = run(db.store(), &req).await;
    let CycleOutcome::Recorded {
        cycle_id,
        status,
        result,
        pending,
        replayed,
    } = out
    else {
        panic!("rejected")
    };
    assert_eq!(cycle_id, req.cycle_id);
    assert_eq!(status, CycleStatus::Completed);
    assert!(!replayed);
    let output = result.unwrap();
    assert_eq!(output.cycle_id, req.cycle_id.to_string());
    assert_eq!(pending.len(), output.actions.len() + 1);
    assert_eq!(
        db.count("SELECT count(*) FROM actions WHERE status = 'pending'")
            .await,
        output.actions.len() as i64
    );
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT status, binding_constraint, priority_metric, output->>'cycle_id',
                    window_start::text, window_end::text, trigger_type
             FROM cycles WHERE message_id = 'msg-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    assert_eq!(
        row.get::<_, String>(1),
        output.cycle_summary.binding_constraint.as_str()
    );
    assert_eq!(
        row.get::<_, String>(2),
        output.cycle_summary.priority_metric
    );
    assert_eq!(row.get::<_, String>(3), req.cycle_id.to_string());
    assert_eq!(row.get::<_, String>(4), "2026-10-27");
    assert_eq!(row.get::<_, String>(5), "2026-11-25");
    assert_eq!(row.get::<_, String>(6), "scheduled");

    // The relay: confirm the action row, fail the event row once.
    let action_row = pending
        .iter()
        .find(|r| r.message.action_id.is_some())
        .unwrap();
    let event_row = pending
        .iter()
        .find(|r| r.message.action_id.is_none())
        .unwrap();
    db.store().mark_published(action_row.key()).await.unwrap();
    db.store().mark_published(action_row.key()).await.unwrap(); // idempotent
    db.store()
        .record_publish_failure(event_row.key(), "nack")
        .await
        .unwrap();
    let still = db.store().pending_outbox(100).await.unwrap();
    assert_eq!(still.len(), pending.len() - 1);
    let ev = still.iter().find(|r| r.id == event_row.id).unwrap();
    assert_eq!(ev.attempts, 1);
    assert_eq!(ev.message, event_row.message);
    let status: String = c
        .query_one(
            "SELECT status FROM actions WHERE cycle_id = $1 AND action_id = $2",
            &[&cycle_id, &action_row.message.action_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "published");

    // Redelivery of msg-1: the stored result, minus what was published.
    let again = run(db.store(), &req).await;
    let CycleOutcome::Recorded {
        cycle_id: c2,
        result: r2,
        pending: p2,
        replayed,
        ..
    } = again
    else {
        panic!("rejected")
    };
    assert!(replayed);
    assert_eq!(c2, cycle_id);
    assert_eq!(r2.unwrap(), output);
    assert_eq!(p2.len(), pending.len() - 1);
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 1);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_parallel_cycles_one_completes_seven_are_too_recent() {
    let (db, input) = imported().await;
    let store = db.store().clone();
    let reqs = (0..8)
        .map(|i| request(&input, &format!("parallel-{i}")))
        .collect();
    let mut statuses = Vec::new();
    for outcome in run_parallel(&store, reqs).await {
        match outcome {
            CycleOutcome::Recorded { status, result, .. } => {
                if status == CycleStatus::Skipped {
                    assert_eq!(result.unwrap_err().code, ErrorCode::CycleTooRecent);
                }
                statuses.push(status);
            }
            other => panic!("{other:?}"),
        }
    }
    let completed = statuses
        .iter()
        .filter(|s| **s == CycleStatus::Completed)
        .count();
    let skipped = statuses
        .iter()
        .filter(|s| **s == CycleStatus::Skipped)
        .count();
    assert_eq!((completed, skipped), (1, 7));
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'skipped' AND error_code = 'CYCLE_TOO_RECENT'").await,
        7
    );
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'completed'")
            .await,
        1
    );
    // Once the interval has passed, the next trigger runs.
    let later = fixture_now() + chrono::Duration::hours(12);
    let mut req = request(&input, "later");
    req.trigger.triggered_at = "2026-11-26T18:00:00Z".into();
    req.triggered_at = later;
    let CycleOutcome::Recorded { status, .. } =
        store.run_cycle(&req, later, &policy()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Completed);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_parallel_calls_with_one_message_id_share_one_cycle() {
    let (db, input) = imported().await;
    // Each redelivery would come with a fresh candidate cycle id.
    let reqs = (0..8).map(|_| request(&input, "same-message")).collect();
    let mut outcomes = Vec::new();
    for outcome in run_parallel(db.store(), reqs).await {
        match outcome {
            CycleOutcome::Recorded {
                cycle_id,
                status,
                result,
                replayed,
                ..
            } => outcomes.push((cycle_id, status, result.unwrap(), replayed)),
            other => panic!("{other:?}"),
        }
    }
    let first = &outcomes[0];
    for o in &outcomes {
        assert_eq!(o.0, first.0);
        assert_eq!(o.1, CycleStatus::Completed);
        assert_eq!(o.2, first.2);
    }
    assert_eq!(outcomes.iter().filter(|o| !o.3).count(), 1);
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn unknown_tenant_is_rejected_and_recorded_once() {
    let db = TestDb::new().await;
    let input = fixture(DEMAND_BOUND); // never imported
    let req = request(&input, "ghost-1");
    for _ in 0..2 {
        let out = run(db.store(), &req).await;
        match out {
            CycleOutcome::UnknownTenant => {}
            other => panic!("{other:?}"),
        }
    }
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT count(*), min(error_code), min(tenant_id::text) FROM rejected_triggers",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, String>(1), "TENANT_NOT_FOUND");
    assert_eq!(row.get::<_, String>(2), input.tenant_id);
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 0);

    // Not sticky: once the tenant exists, the same message_id runs.
    db.store().import(&input, &catalog()).await.unwrap();
    let out = run(db.store(), &req).await;
    assert!(
        matches!(
            out,
            CycleOutcome::Recorded {
                status: CycleStatus::Completed,
                replayed: false,
                ..
            }
        ),
        "{out:?}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn missing_required_metrics_record_a_failed_cycle() {
    let db = TestDb::new().await;
    let mut input = fixture(DEMAND_BOUND);
    input.metrics.retain(|m| m.metric_id != "pipeline_total");
    db.store().import(&input, &catalog()).await.unwrap();
    let req = request(&input, "thin-1");
    let out = run(db.store(), &req).await;
    let CycleOutcome::Recorded {
        status,
        result,
        pending,
        ..
    } = out
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Failed);
    assert_eq!(result.unwrap_err().code, ErrorCode::InsufficientData);
    assert_eq!(pending.len(), 1, "the cycle event only");
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'failed' AND error_code = 'INSUFFICIENT_DATA' AND output IS NULL").await,
        1
    );
    // A failed cycle does not hold back the next one.
    let CycleOutcome::Recorded { status, .. } = run(db.store(), &request(&input, "thin-2")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Failed);
    db.cleanup().await;
}

/// A cycle's writes go out together, and run in the order sent only when every one is in
/// the connection's statement cache first. On one connection, a failed cycle caches the
/// cycle and outbox inserts and not the actions insert: the completed cycle after it must
/// still write its actions before the outbox rows that refer to them.
#[tokio::test]
async fn a_completed_cycle_after_a_failed_one_on_the_same_connection_writes_in_order() {
    let db = TestDb::with_pool_size(1).await;
    let full = fixture(DEMAND_BOUND);
    let mut thin = full.clone();
    thin.metrics.retain(|m| m.metric_id != "pipeline_total");
    db.store().import(&thin, &catalog()).await.unwrap();
    let CycleOutcome::Recorded { status, .. } = run(db.store(), &request(&thin, "first")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Failed);
    db.store().import(&full, &catalog()).await.unwrap();
    let CycleOutcome::Recorded {
        status, pending, ..
    } = run(db.store(), &request(&full, "second")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Completed);
    let actions = db.count("SELECT count(*) FROM actions").await;
    assert!(actions > 0);
    assert_eq!(
        pending.len() as i64,
        actions + 1,
        "each action and the cycle event"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn no_window_means_the_thirty_days_ending_yesterday() {
    let (db, input) = imported().await;
    let mut req = request(&input, "default-window");
    req.window = DateRange::default_for(req.triggered_at);
    let out = run(db.store(), &req).await;
    assert!(matches!(
        out,
        CycleOutcome::Recorded {
            status: CycleStatus::Completed,
            ..
        }
    ));
    let row = db
        .client()
        .await
        .query_one(
            "SELECT window_start::text, window_end::text FROM cycles",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "2026-10-27");
    assert_eq!(row.get::<_, String>(1), "2026-11-25");
    db.cleanup().await;
}

/// Message ids are scoped per tenant: tenant B's trigger with tenant A's id runs its own
/// cycle; each tenant's repeat of the id replays its own cycle, never the other's.
#[tokio::test]
async fn each_tenant_has_its_own_message_ids() {
    let db = TestDb::new().await;
    let a = fixture(DEMAND_BOUND);
    let mut b = a.clone();
    b.tenant_id = Uuid::new_v4().to_string();
    for t in [&a, &b] {
        db.store().import(t, &catalog()).await.unwrap();
    }
    let completed = |out: &CycleOutcome| match out {
        CycleOutcome::Recorded {
            cycle_id,
            status: CycleStatus::Completed,
            replayed,
            ..
        } => Some((*cycle_id, *replayed)),
        _ => None,
    };
    let first_a = run(db.store(), &request(&a, "shared-id")).await;
    let (cycle_a, replayed) = completed(&first_a).expect("A completes");
    assert!(!replayed);
    let first_b = run(db.store(), &request(&b, "shared-id")).await;
    let (cycle_b, replayed) = completed(&first_b).expect("B runs and completes");
    assert!(!replayed, "B is not answered with A's cycle");
    assert_ne!(cycle_a, cycle_b);

    // Each tenant's redelivery replays its own cycle.
    for (t, own) in [(&a, cycle_a), (&b, cycle_b)] {
        let again = run(db.store(), &request(t, "shared-id")).await;
        assert_eq!(completed(&again), Some((own, true)), "{}", t.tenant_id);
    }
    let owners: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT tenant_id::text FROM cycles WHERE message_id = 'shared-id' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want = vec![a.tenant_id.clone(), b.tenant_id.clone()];
    want.sort();
    assert_eq!(owners, want);

    // Rejections are per tenant too: two unknown tenants with one id leave two rows.
    for _ in 0..2 {
        let mut stranger = a.clone();
        stranger.tenant_id = Uuid::new_v4().to_string();
        let out = run(db.store(), &request(&stranger, "shared-id")).await;
        assert_eq!(out, CycleOutcome::UnknownTenant);
    }
    assert_eq!(
        db.count("SELECT count(*) FROM rejected_triggers WHERE message_id = 'shared-id'")
            .await,
        2
    );
    db.cleanup().await;
}

/// The ids the sweeper would take now, in its order.
async fn pending_ids(db: &TestDb) -> Vec<i64> {
    let rows = db.store().pending_outbox(100).await.unwrap();
    rows.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn sweepers_claim_rows_so_only_one_publishes_each() {
    let db = TestDb::new().await;
    let input = fixture(DEMAND_BOUND);
    db.store().import(&input, &catalog()).await.unwrap();
    run(db.store(), &request(&input, "claims")).await;
    let pending = pending_ids(&db).await;
    assert!(!pending.is_empty());
    let keys: Vec<_> = db
        .store()
        .pending_outbox(100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.key())
        .collect();
    let ttl = std::time::Duration::from_secs(30);
    let (first, second) = tokio::join!(
        db.store().claim_outbox(&keys, ttl),
        db.store().claim_outbox(&keys, ttl)
    );
    let (mut first, second) = (first.unwrap(), second.unwrap());
    first.extend(second);
    first.sort_unstable();
    assert_eq!(first, pending, "each row claimed exactly once");
    assert!(
        pending_ids(&db).await.is_empty(),
        "claimed rows are not pending"
    );

    // A row that keeps failing goes to the back of the queue.
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE outbox SET claimed_until = NULL,
                               attempts = CASE WHEN id = {0} THEN 9 ELSE 0 END;
             UPDATE actions SET publish_claimed_until = NULL,
                                publish_attempts = CASE WHEN outbox_id = {0} THEN 9 ELSE 0 END
              WHERE message IS NOT NULL",
            pending[0]
        ))
        .await
        .unwrap();
    let order = pending_ids(&db).await;
    assert_eq!(order.last(), Some(&pending[0]));
    db.cleanup().await;
}

/// A policy with no kernel behind it: the store's locks, idempotency and persistence are
/// testable on their own.
struct Stub {
    check: bool,
    admit: bool,
}

impl CyclePolicy for Stub {
    fn check(&self, _: &CycleRequest) -> Result<(), KernelError> {
        if self.check {
            Ok(())
        } else {
            Err(KernelError::new(ErrorCode::InvalidInput, "stub says no"))
        }
    }

    fn admit(&self, _: Option<&LastCycle>, _: DateTime<Utc>) -> Result<(), KernelError> {
        if self.admit {
            Ok(())
        } else {
            Err(KernelError::new(
                ErrorCode::CycleTooRecent,
                "stub says wait",
            ))
        }
    }

    fn decide(
        &self,
        input: KernelInput,
        _: &Levers,
        _: DateTime<Utc>,
        _: Uuid,
    ) -> Result<KernelOutput, KernelError> {
        Err(KernelError::internal(format!(
            "stub saw {} metric rows",
            input.metrics.len()
        )))
    }

    fn plan(
        &self,
        cycle_id: Uuid,
        result: &Result<KernelOutput, KernelError>,
        status: CycleStatus,
        _: &ApprovalFacts,
    ) -> Plan {
        Plan {
            messages: plan(cycle_id, result, status),
            held: vec![],
        }
    }
}

/// One run_cycle of the fixture's tenant under a stub policy: the status and the result.
async fn run_stub(
    db: &TestDb,
    input: &KernelInput,
    message_id: &str,
    stub: Stub,
) -> (CycleStatus, Result<Box<KernelOutput>, KernelError>, usize) {
    let out = db
        .store()
        .run_cycle(&request(input, message_id), fixture_now(), &stub)
        .await
        .unwrap();
    let CycleOutcome::Recorded {
        status,
        result,
        pending,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    (status, result, pending.len())
}

#[tokio::test]
async fn the_store_records_what_any_policy_says() {
    let (db, input) = imported().await;
    let wait = Stub {
        check: true,
        admit: false,
    };
    let (status, result, pending) = run_stub(&db, &input, "stub-1", wait).await;
    assert_eq!(status, CycleStatus::Skipped);
    assert_eq!(result.unwrap_err().message, "stub says wait");
    assert_eq!(pending, 1, "only the cycle event");

    let go = Stub {
        check: true,
        admit: true,
    };
    let (status, result, _) = run_stub(&db, &input, "stub-2", go).await;
    assert_eq!(status, CycleStatus::Failed);
    let assembled = input.metrics.len();
    assert_eq!(
        result.unwrap_err().message,
        format!("stub saw {assembled} metric rows")
    );
    assert_eq!(db.count("SELECT count(*) FROM actions").await, 0);

    // A request the policy refuses outright is a failed cycle: not admitted, not assembled.
    let refuse = Stub {
        check: false,
        admit: false,
    };
    let (status, result, _) = run_stub(&db, &input, "stub-3", refuse).await;
    assert_eq!(status, CycleStatus::Failed);
    let e = result.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::InvalidInput, "stub says no")
    );
    db.cleanup().await;
}
