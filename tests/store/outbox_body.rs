//! The outbox keeps an action message's body and a cycle event's by reference to the rows the
//! cycle writes anyway (migration V19): nothing is copied, and the sweep and a replayed cycle
//! read back the same JSON the cycle first handed the relay.

use crate::common::db::TestDb;
use crate::common::*;
use crate::cycle::request;
use revenue_os::broker::Topology;
use revenue_os::contract::ActionMessage;
use revenue_os::store::*;
use revenue_os::worker::{PlanContext, Planner, TriggerPolicy};
use serde_json::Value;
use std::collections::BTreeMap;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Each row's body as JSON, by message id.
fn bodies(rows: &[OutboxRow]) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|r| (r.message.message_id.clone(), json(&r.message.body)))
        .collect()
}

async fn cycle(db: &TestDb, req: &CycleRequest, planner: &Planner) -> CycleOutcome {
    let rules = rules();
    let now = fixture_now();
    let pctx = PlanContext {
        tenant_id: req.tenant_id,
        message_id: req.message_id.clone(),
        trigger: req.trigger.clone(),
    };
    let policy = TriggerPolicy {
        rules: &rules,
        planner,
        trigger: &pctx,
        now,
    };
    db.store().run_cycle(req, now, &policy).await.unwrap()
}

#[tokio::test]
async fn bodies_kept_by_reference_read_back_as_the_json_first_published() {
    let (db, input) = imported().await;
    let planner = Planner::new(Topology::new("bodies", &catalog(), 5));
    let req = request(&input, "msg-body");
    let CycleOutcome::Recorded {
        status: CycleStatus::Completed,
        pending: fresh,
        ..
    } = cycle(&db, &req, &planner).await
    else {
        panic!("the example tenant's cycle did not complete")
    };
    let actions = fresh
        .iter()
        .filter(|r| r.message.action_id.is_some())
        .count();
    assert!(actions > 0, "the example tenant proposes actions");

    // Nothing copied: each action is its own entry (V27), and the outbox's one row, the
    // cycle event, names where its body is.
    let c = db.client().await;
    let kept: Vec<(Option<String>, bool)> = c
        .query(
            "SELECT body_ref, body IS NULL FROM outbox WHERE cycle_id = $1 ORDER BY id",
            &[&req.cycle_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(kept, vec![(Some("cycle_output".to_owned()), true)]);
    let entries = db
        .count(&format!(
            "SELECT count(*) FROM actions WHERE cycle_id = '{}' AND message IS NOT NULL",
            req.cycle_id
        ))
        .await;
    assert_eq!(entries, actions as i64);
    // One sequence: the ids order the cycle's messages as the relay publishes them.
    assert!(fresh.windows(2).all(|w| w[0].id < w[1].id), "{fresh:?}");

    // The sweep rebuilds each body: the same JSON, and an action's still reads as the
    // contract's ActionMessage.
    let swept = db.store().pending_outbox(100).await.unwrap();
    assert_eq!(swept.len(), fresh.len());
    assert_eq!(bodies(&swept), bodies(&fresh));
    for r in swept.iter().filter(|r| r.message.action_id.is_some()) {
        let m: ActionMessage = serde_json::from_slice(&r.message.body).unwrap();
        assert_eq!(Some(&m.action.action_id), r.message.action_id.as_ref());
    }

    // A redelivered trigger replays the cycle: its unpublished rows, rebuilt the same way.
    db.store().mark_published(fresh[0].key()).await.unwrap();
    // The confirmed action keeps its confirm time and its message's address, not what only a
    // re-publish reads.
    let r = c
        .query_one(
            "SELECT status, published_at IS NOT NULL, message ->> 'message_id',
                    message ? 'head' OR message ? 'headers'
               FROM actions WHERE outbox_id = $1",
            &[&fresh[0].id],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "published");
    assert!(r.get::<_, bool>(1));
    assert_eq!(r.get::<_, String>(2), fresh[0].message.message_id);
    assert!(!r.get::<_, bool>(3));
    let CycleOutcome::Recorded {
        replayed: true,
        pending: again,
        ..
    } = cycle(&db, &req, &planner).await
    else {
        panic!("the redelivery was not a replay")
    };
    let mut rest = bodies(&fresh);
    rest.remove(&fresh[0].message.message_id);
    assert_eq!(bodies(&again), rest);
    db.cleanup().await;
}

#[tokio::test]
async fn a_body_whose_row_is_gone_is_a_clear_error_not_an_empty_message() {
    let (db, input) = imported().await;
    let planner = Planner::new(Topology::new("bodies_gone", &catalog(), 5));
    let req = request(&input, "msg-gone");
    cycle(&db, &req, &planner).await;
    // Only by hand: the cycle's output and its outbox row share a transaction otherwise.
    let c = db.client().await;
    c.execute(
        "UPDATE cycles SET status = 'failed', error_code = 'INTERNAL_ERROR', error = '{}',
                           output = NULL
         WHERE cycle_id = $1",
        &[&req.cycle_id],
    )
    .await
    .unwrap();
    let err = db.store().pending_outbox(100).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    db.cleanup().await;
}
