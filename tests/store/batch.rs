//! run_cycles: several triggers' cycles in one transaction, each as `run_cycle` would record
//! it alone; ordered tenant locks; all or nothing.

use crate::common::db::TestDb;
use crate::common::*;
use crate::cycle::{policy, request};
use revenue_os::contract::*;
use revenue_os::store::*;
use uuid::Uuid;

/// The fixture under another tenant id, imported.
async fn tenant(db: &TestDb) -> KernelInput {
    let mut input = fixture(DEMAND_BOUND);
    input.tenant_id = Uuid::new_v4().to_string();
    db.store().import(&input, &catalog()).await.unwrap();
    input
}

fn status_of(o: &CycleOutcome) -> (Option<CycleStatus>, bool) {
    match o {
        CycleOutcome::Recorded {
            status, replayed, ..
        } => (Some(*status), *replayed),
        CycleOutcome::UnknownTenant => (None, false),
    }
}

fn cycle_of(o: &CycleOutcome) -> Option<Uuid> {
    match o {
        CycleOutcome::Recorded { cycle_id, .. } => Some(*cycle_id),
        CycleOutcome::UnknownTenant => None,
    }
}

#[tokio::test]
async fn a_batch_records_each_cycle_as_it_would_alone() {
    let db = TestDb::new().await;
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let mut ghost = fixture(DEMAND_BOUND);
    ghost.tenant_id = Uuid::new_v4().to_string();
    let p = policy();
    let reqs = [
        request(&a, "m-1"),
        // Another tenant's message with the same id is its own trigger.
        request(&b, "m-1"),
        // The first message again (a redelivery in the same batch): a replay.
        request(&a, "m-1"),
        // A second trigger of the first tenant: spaced by the 12-hour rule.
        request(&a, "m-2"),
        request(&ghost, "m-3"),
    ];
    let batch: Vec<(&CycleRequest, &dyn CyclePolicy)> =
        reqs.iter().map(|r| (r, &p as &dyn CyclePolicy)).collect();
    let out = db.store().run_cycles(&batch, fixture_now()).await.unwrap();
    let statuses: Vec<_> = out.iter().map(status_of).collect();
    assert_eq!(
        statuses,
        vec![
            (Some(CycleStatus::Completed), false),
            (Some(CycleStatus::Completed), false),
            (Some(CycleStatus::Completed), true),
            (Some(CycleStatus::Skipped), false),
            (None, false),
        ]
    );
    assert_eq!(
        cycle_of(&out[2]),
        cycle_of(&out[0]),
        "the replay names the first cycle"
    );
    assert_ne!(cycle_of(&out[1]), cycle_of(&out[0]));
    match &out[3] {
        CycleOutcome::Recorded { result, .. } => {
            assert_eq!(result.as_ref().unwrap_err().code, ErrorCode::CycleTooRecent)
        }
        other => panic!("{other:?}"),
    }
    // Recorded as alone: three cycles, the rejection, and both completed cycles' outbox rows
    // (each with its pending rows returned for the relay; none for the replay).
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM rejected_triggers").await, 1);
    let pending = |o: &CycleOutcome| match o {
        CycleOutcome::Recorded { pending, .. } => pending.len() as i64,
        CycleOutcome::UnknownTenant => 0,
    };
    let rows = db
        .count("SELECT count(*) FROM outbox_messages WHERE published_at IS NULL")
        .await;
    assert_eq!(rows, pending(&out[0]) + pending(&out[1]) + pending(&out[3]));
    assert!(pending(&out[0]) > 1 && pending(&out[1]) > 1);
    // Each tenant's rows are its own.
    for (input, o) in [(&a, &out[0]), (&b, &out[1])] {
        let n = db
            .count(&format!(
                "SELECT count(*) FROM actions WHERE tenant_id = '{}' AND cycle_id = '{}'",
                input.tenant_id,
                cycle_of(o).unwrap()
            ))
            .await;
        assert!(n > 0, "{n}");
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_naming_the_same_tenants_in_opposite_orders_never_deadlock() {
    let db = TestDb::new().await;
    let tenants = [tenant(&db).await, tenant(&db).await, tenant(&db).await];
    let p = std::sync::Arc::new(policy());
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = db.store().clone();
            let p = p.clone();
            // Half the batches name the tenants forwards, half backwards.
            let mut order: Vec<&KernelInput> = tenants.iter().collect();
            if i % 2 == 1 {
                order.reverse();
            }
            let reqs: Vec<CycleRequest> = order
                .iter()
                .map(|t| request(t, &format!("batch-{i}")))
                .collect();
            tokio::spawn(async move {
                let batch: Vec<(&CycleRequest, &dyn CyclePolicy)> = reqs
                    .iter()
                    .map(|r| (r, p.as_ref() as &dyn CyclePolicy))
                    .collect();
                store.run_cycles(&batch, fixture_now()).await
            })
        })
        .collect();
    for t in tasks {
        let out = t.await.unwrap().expect("no deadlock, no lock timeout");
        assert_eq!(out.len(), 3);
    }
    // Each tenant: one completed cycle, eleven spaced out by the 12-hour rule.
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'completed'")
            .await,
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE status = 'skipped'")
            .await,
        33
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_failing_cycle_leaves_nothing_of_its_batch() {
    let db = TestDb::new().await;
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let p = policy();
    let first = request(&a, "m-1");
    // The same cycle id twice: the second insert breaks the batch's transaction.
    let mut second = request(&b, "m-1");
    second.cycle_id = first.cycle_id;
    let batch: Vec<(&CycleRequest, &dyn CyclePolicy)> = vec![(&first, &p), (&second, &p)];
    let err = db
        .store()
        .run_cycles(&batch, fixture_now())
        .await
        .unwrap_err();
    assert!(!err.is_unreachable(), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM cycles").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM outbox_messages").await, 0);
    // Alone, each runs as usual afterwards.
    for req in [&first, &request(&b, "m-1")] {
        let CycleOutcome::Recorded { status, .. } =
            db.store().run_cycle(req, fixture_now(), &p).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(status, CycleStatus::Completed);
    }
    db.cleanup().await;
}
