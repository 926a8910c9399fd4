//! import → assemble gives back the document, and the kernel decides the same on both.

use crate::common::db::TestDb;
use crate::common::*;
use revenue_os::contract::*;
use revenue_os::kernel;
use uuid::Uuid;

#[tokio::test]
async fn import_then_assemble_round_trips_the_fixture() {
    let (db, input) = imported().await;
    let catalog = catalog();

    let assembled = assemble(&db, &input).await;
    assert_eq!(normalized(assembled.clone()), normalized(input.clone()));

    // The kernel decides identically on the document and on the assembly.
    let now = fixture_now();
    let cycle_id = Uuid::parse_str("0b7f1c9e-1d2a-4c3b-8e5f-6a7b8c9d0e1f").unwrap();
    let no_levers = revenue_os::contract::Levers::default();
    let from_file = kernel::run(
        &fixture_bytes(DEMAND_BOUND),
        &no_levers,
        &catalog,
        now,
        cycle_id,
    )
    .unwrap();
    let assembled = check_input(assembled, &catalog, now).unwrap();
    let from_db = kernel::decide(&assembled, &no_levers, &catalog, now, cycle_id).unwrap();
    assert_eq!(from_file, from_db);
    db.cleanup().await;
}

#[tokio::test]
async fn reimporting_the_same_document_changes_nothing() {
    let (db, input) = imported().await;
    let catalog = catalog();
    let c = db.client().await;
    let stamp = "SELECT (SELECT max(updated_at) FROM revenue_events),
                        (SELECT max(updated_at) FROM metric_snapshots),
                        (SELECT count(*) FROM revenue_events)";
    let before = c.query_one(stamp, &[]).await.unwrap();
    db.store().import(&input, &catalog).await.unwrap();
    let after = c.query_one(stamp, &[]).await.unwrap();
    for i in 0..2 {
        let a: chrono::DateTime<chrono::Utc> = before.get(i);
        let b: chrono::DateTime<chrono::Utc> = after.get(i);
        assert_eq!(a, b, "column {i} was rewritten");
    }
    assert_eq!(before.get::<_, i64>(2), after.get::<_, i64>(2));
    db.cleanup().await;
}

#[tokio::test]
async fn assembly_applies_the_window_and_openness_rules() {
    let db = TestDb::new().await;
    let catalog = catalog();
    let mut input = fixture(DEMAND_BOUND);
    let outside = |id: &str, date: &str| RevenueEvent {
        id: id.into(),
        kind: "new_booking".into(),
        amount: 1.0,
        effective_date: date.into(),
        attributed_campaign_id: None,
        attributed_channel: None,
    };
    input
        .revenue_events
        .push(outside("evt_before", "2026-10-26"));
    input
        .revenue_events
        .push(outside("evt_after", "2026-11-26"));
    input.metrics.push(MetricPoint {
        metric_id: "pipeline_total".into(),
        value: 1.0,
        date: "2026-09-01".into(),
        dimension: None,
    });
    // Two channels of a metric on a day it also has undimensioned, given out of order.
    let first = input.metrics[0].clone();
    for channel in ["paid_social", "events"] {
        input.metrics.push(MetricPoint {
            dimension: Some([("channel".to_owned(), channel.to_owned())].into()),
            ..first.clone()
        });
    }
    let mut closed = input.opportunities[0].clone();
    closed.id = "opp_won".into();
    closed.stage = "closed_won".into();
    input.opportunities.push(closed);
    let mut old = input.campaigns[0].clone();
    old.id = "cmp_old".into();
    old.status = "completed".into();
    old.start_date = "2026-01-01".into();
    old.end_date = Some("2026-03-31".into());
    input.campaigns.push(old);
    let mut paused_overlapping = input.campaigns[0].clone();
    paused_overlapping.id = "cmp_paused".into();
    paused_overlapping.status = "paused".into();
    input.campaigns.push(paused_overlapping);
    input.recent_action_results = Some(vec![ActionResult {
        action_id: "crm.config_change.follow_up_sla_hours".into(),
        target_metric: "pipeline_total".into(),
        baseline_value: 1.0,
        observed_value: 2.0,
        delta: 1.0,
        confidence: 0.8,
        outcome: Outcome::Successful,
    }]);
    db.store().import(&input, &catalog).await.unwrap();
    // An action result reported long ago no longer feeds cycles.
    db.client()
        .await
        .execute(
            "INSERT INTO action_results (tenant_id, action_id, target_metric, baseline_value,
                observed_value, delta, confidence, outcome, recorded_at)
             VALUES ($1, 'old', 'pipeline_total', 1, 1, 0, 0.5, 'inconclusive',
                     now() - interval '200 days')",
            &[&Uuid::parse_str(&input.tenant_id).unwrap()],
        )
        .await
        .unwrap();

    let got = assemble(&db, &input).await;
    let ids = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    let events: Vec<String> = ids(got.revenue_events.iter().map(|e| e.id.as_str()).collect());
    assert!(!events.contains(&"evt_before".to_string()));
    assert!(!events.contains(&"evt_after".to_string()));
    assert_eq!(events.len(), 60);
    assert!(got.metrics.iter().all(|m| m.date.as_str() >= "2026-10-27"));
    assert!(got.opportunities.iter().all(|o| o.id != "opp_won"));
    let campaigns: Vec<&str> = got.campaigns.iter().map(|c| c.id.as_str()).collect();
    assert!(!campaigns.contains(&"cmp_old"));
    assert!(campaigns.contains(&"cmp_paused"));
    let results = got.recent_action_results.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Successful);
    // Deterministic order: by date, then id.
    let mut sorted = got.revenue_events.clone();
    sorted.sort_by(|a, b| (&a.effective_date, &a.id).cmp(&(&b.effective_date, &b.id)));
    assert_eq!(sorted, got.revenue_events);
    // Metrics in their key's order, across the window's two months: date, metric, then
    // dimension in jsonb's order (undimensioned first; one-key objects by value).
    let key = |m: &MetricPoint| (m.date.clone(), m.metric_id.clone(), m.dimension.clone());
    let mut sorted = got.metrics.clone();
    sorted.sort_by_key(key);
    assert_eq!(sorted, got.metrics);
    assert!(got.metrics.first().map(|m| &m.date) < got.metrics.last().map(|m| &m.date));
    let day: Vec<Option<&str>> = got
        .metrics
        .iter()
        .filter(|m| m.metric_id == first.metric_id && m.date == first.date)
        .map(|m| m.dimension.as_ref().map(|d| d["channel"].as_str()))
        .collect();
    assert_eq!(day, [None, Some("events"), Some("paid_social")]);
    db.cleanup().await;
}

#[tokio::test]
async fn assembling_an_unknown_tenant_finds_nothing() {
    let db = TestDb::new().await;
    let input = fixture(DEMAND_BOUND);
    let at = parse_timestamp(&input.trigger.triggered_at).unwrap();
    let window = DateRange::parse(&input.analysis_window).unwrap();
    let got = db
        .store()
        .assemble(Uuid::new_v4(), &input.trigger, at, window)
        .await
        .unwrap();
    assert!(got.is_none());
    db.cleanup().await;
}
