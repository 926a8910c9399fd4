//! A cycle with nothing to do (issue 24): recorded `skipped` with reason
//! `no_executable_action`, no error code, no actions, and it counts toward the spacing rule.

use super::cycle::{request, run};
use crate::common::db::TestDb;
use crate::common::*;
use revenue_os::contract::*;
use revenue_os::store::*;

/// The example tenant with only the pricing lever: a demand constraint has no play for it.
async fn nothing_to_do() -> (TestDb, KernelInput) {
    let db = TestDb::new().await;
    let mut input = fixture(DEMAND_BOUND);
    input.guardrails.allowed_levers = vec![Lever::Pricing];
    db.store().import(&input, &catalog()).await.unwrap();
    (db, input)
}

#[tokio::test]
async fn no_executable_action_is_a_skipped_cycle_that_counts_toward_spacing() {
    let (db, input) = nothing_to_do().await;
    let CycleOutcome::Recorded {
        status,
        result,
        pending,
        ..
    } = run(db.store(), &request(&input, "nothing-1")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Skipped);
    let e = result.unwrap_err();
    assert_eq!(
        revenue_os::kernel::skip_reason(&e),
        Some("no_executable_action")
    );
    assert_eq!(
        pending.len(),
        1,
        "the cycle event only: no output is published"
    );
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, skip_reason, error_code, error IS NOT NULL, output IS NULL
             FROM cycles WHERE message_id = 'nothing-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "skipped");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("no_executable_action")
    );
    assert_eq!(row.get::<_, Option<String>>(2), None, "not INVALID_INPUT");
    // The kernel's error stays, for its list of excluded candidates; there is no output.
    assert!(row.get::<_, bool>(3) && row.get::<_, bool>(4));
    assert_eq!(db.count("SELECT count(*) FROM actions").await, 0);

    // It was decided: the next trigger inside the spacing is too recent, as after a
    // completed cycle (a failure would not hold it back).
    let CycleOutcome::Recorded { status, result, .. } =
        run(db.store(), &request(&input, "nothing-2")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Skipped);
    assert_eq!(result.unwrap_err().code, ErrorCode::CycleTooRecent);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM cycles WHERE message_id = 'nothing-2'
               AND error_code = 'CYCLE_TOO_RECENT' AND skip_reason IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'failed'")
            .await,
        0
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_skip_reason_without_a_skipped_status_is_refused_by_the_table() {
    let (db, input) = nothing_to_do().await;
    run(db.store(), &request(&input, "nothing-1")).await;
    let c = db.client().await;
    let bad = c
        .execute(
            "UPDATE cycles SET status = 'failed' WHERE message_id = 'nothing-1'",
            &[],
        )
        .await;
    assert!(bad.is_err(), "a failed cycle needs its error code");
    db.cleanup().await;
}

#[tokio::test]
async fn the_latest_completed_cycle_passes_over_a_newer_skipped_one() {
    // V26 reads it from `cycles_last_decided`, which holds skipped cycles with nothing to
    // do beside completed ones.
    let db = TestDb::new().await;
    let input = fixture(DEMAND_BOUND);
    db.store().import(&input, &catalog()).await.unwrap();
    let CycleOutcome::Recorded {
        cycle_id: completed,
        status,
        ..
    } = run(db.store(), &request(&input, "decided")).await
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Completed);

    // Twelve hours on, the pricing lever alone leaves nothing to do.
    let mut narrowed = input.clone();
    narrowed.guardrails.allowed_levers = vec![Lever::Pricing];
    db.store().import(&narrowed, &catalog()).await.unwrap();
    let later = fixture_now() + chrono::Duration::hours(12);
    let mut req = request(&narrowed, "nothing");
    req.trigger.triggered_at = "2026-11-26T18:00:00Z".into();
    req.triggered_at = later;
    let CycleOutcome::Recorded { status, .. } = db
        .store()
        .run_cycle(&req, later, &super::cycle::policy())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(status, CycleStatus::Skipped);

    let tenant = req.tenant_id;
    let latest = db.store().latest_completed_cycle(tenant).await.unwrap();
    assert_eq!(latest.map(|c| c.cycle_id), Some(completed));
    db.cleanup().await;
}
