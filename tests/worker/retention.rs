//! Bounded tables (issue 21): a simulated year of mornings with the `retention` service on a
//! simulated clock, and the old cycles it must keep.

use crate::common::db::TestDb;
use chrono::{DateTime, Days, Months, NaiveDate, TimeZone, Utc};
use revenue_os::clock::Clock;
use revenue_os::store::month_of;
use revenue_os::worker::periodic::{MONTHS_AHEAD, Next, Periodic, Retention};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_postgres::Client;
use uuid::Uuid;

/// A completed cycle of tenant `t` executed `at`, one action per status with its outbox
/// row, evaluation, report and approval decision, a data-quality action and the cycle's own
/// outbox row; published (or not) `at`. Written by the admin, as the worker would have.
const SIM_SQL: &str = r#"
CREATE FUNCTION pg_temp.sim_cycle(t uuid, at timestamptz, msg text, statuses text[],
                                  published boolean) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    c uuid := gen_random_uuid();
    day date := (at AT TIME ZONE 'UTC')::date;
BEGIN
    INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source,
                        triggered_at, trigger, window_start, window_end, status, executed_at,
                        duration_ms, output)
    VALUES (c, t, msg, 'scheduled', 'sim', at, '{}', day - 30, day - 1, 'completed', at, 5, '{}');
    FOR i IN 1 .. cardinality(statuses) LOOP
        INSERT INTO actions (cycle_id, action_id, tenant_id, priority, owner_subsystem, type,
                             target_metric, action, status, created_at, updated_at)
        VALUES (c, 'a' || i, t, i, 'campaigns', 'scale', 'pipeline_total', '{}', statuses[i],
                at, at);
        INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id, body,
                            action_id, created_at, published_at)
        VALUES (c, t, 'sim.actions', 'scale.' || t, msg || '-' || t || '-a' || i, '\x00',
                'a' || i, at, CASE WHEN published THEN at END);
        INSERT INTO watchdog_evaluations (tenant_id, cycle_id, action_id, as_of, evaluated_at,
                                          mode, verdict, sentence, numbers)
        VALUES (t, c, 'a' || i, day, at, 'enforce', 'watching', 'sim', '{}');
        INSERT INTO action_reports (tenant_id, cycle_id, action_id, source, event_id, type,
                                    received_at, status_before, status_after, result, event)
        VALUES (t, c, 'a' || i, 'sim', msg || '-' || t || '-r' || i, 'applied', at,
                'published', 'applied', 'applied', '{}');
        INSERT INTO approval_decisions (tenant_id, cycle_id, action_id, decision, decided_by,
                                        decided_at)
        VALUES (t, c, 'a' || i, 'approved', 'sim', at);
    END LOOP;
    INSERT INTO data_quality_actions (cycle_id, action_id, tenant_id, priority, issue_type,
                                      affected_metric, description, recommended_fix)
    VALUES (c, 'dq1', t, 1, 'stale_data', 'pipeline_total', 'sim', 'sim');
    INSERT INTO outbox (cycle_id, tenant_id, exchange, routing_key, message_id, body,
                        created_at, published_at)
    VALUES (c, t, 'sim.cycles', 'completed.' || t, msg || '-' || t || '-cycle', '\x00', at,
            CASE WHEN published THEN at END);
    RETURN c;
END $$;

-- One morning `at` (day number n): per tenant a cycle with two finished actions, yesterday's
-- three metrics and one revenue event, a deviation, a delivered notification; a load with a
-- rejected row, a rejected trigger and a sign-in. The daily writers ask for their months
-- first, as every writer does.
CREATE FUNCTION pg_temp.sim_day(at timestamptz, n int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t uuid;
    yesterday date := (at AT TIME ZONE 'UTC')::date - 1;
    note bigint;
BEGIN
    PERFORM revenue_os.ensure_month_partitions('metric_snapshots', ARRAY[yesterday]);
    PERFORM revenue_os.ensure_month_partitions('revenue_events', ARRAY[yesterday]);
    FOR t IN SELECT tenant_id FROM tenants ORDER BY 1 LOOP
        PERFORM pg_temp.sim_cycle(t, at, 'm-' || n, ARRAY['concluded', 'failed'], true);
        INSERT INTO metric_snapshots (tenant_id, metric_id, date, value)
        SELECT t, m, yesterday, n FROM unnest(ARRAY['pipeline_total', 'cac_blended',
                                                    'win_rate']) m;
        INSERT INTO revenue_events (tenant_id, id, type, amount, effective_date)
        VALUES (t, 'e-' || n, 'new_booking', 100, yesterday);
        INSERT INTO deviations (tenant_id, metric_id, day, observed, expected, band_lower,
                                band_upper, k, method, days_used, log_scale, severity, harmful)
        VALUES (t, 'pipeline_total', yesterday, 1, 2, 1.5, 2.5, 3.5, 'rolling_median', 28,
                false, 4, true);
        INSERT INTO notifications (event, subject, tenant_id, occurred_at, routed_at)
        VALUES ('deviation_detected', 'sim-' || n || '-' || t, t, at, at) RETURNING id INTO note;
        INSERT INTO webhook_deliveries (notification_id, tenant_id, webhook, url, event, body,
                                        attempts, created_at, delivered_at)
        VALUES (note, t, 'global:sim', 'https://hooks.example/sim', 'deviation_detected',
                '\x00', 1, at, at);
    END LOOP;
    INSERT INTO loads (load_id, kind, source, rows, rejected, tenants, started_at, committed_at,
                       followed_up_at)
    VALUES ('metrics:' || yesterday, 'metrics', 'sim.csv', 10, 1,
            ARRAY(SELECT tenant_id FROM tenants), at, at, at);
    INSERT INTO ingest_rejects (load_id, line, tenant_id, problem, raw)
    VALUES ('metrics:' || yesterday, 2, NULL, 'sim', 'sim');
    INSERT INTO rejected_triggers (message_id, tenant_id, trigger, error_code, error,
                                   rejected_at)
    VALUES ('r-' || n, gen_random_uuid(), '{}', 'TENANT_NOT_FOUND', '{}', at);
    INSERT INTO operator_sign_ins (operator, role, named, signed_in_at)
    VALUES ('sim', 'viewer', true, at);
END $$;
"#;

/// The history tables, each with the column that dates its rows.
const HISTORY: [(&str, &str); 14] = [
    ("cycles", "executed_at"),
    ("actions", "created_at"),
    ("data_quality_actions", "NULL::timestamptz"),
    ("watchdog_evaluations", "evaluated_at"),
    ("action_reports", "received_at"),
    ("approval_decisions", "decided_at"),
    ("outbox", "published_at"),
    ("loads", "committed_at"),
    ("ingest_rejects", "NULL::timestamptz"),
    ("notifications", "occurred_at"),
    ("webhook_deliveries", "delivered_at"),
    ("deviations", "day::timestamptz"),
    ("rejected_triggers", "rejected_at"),
    ("operator_sign_ins", "signed_in_at"),
];

async fn counts(c: &Client) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for (table, _) in HISTORY {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        out.push((table, n));
    }
    out
}

/// The months a table has a partition for, oldest first.
async fn partition_months(c: &Client, table: &str) -> Vec<NaiveDate> {
    c.query(
        "SELECT substring(pg_get_expr(p.relpartbound, p.oid) FROM 'FROM \\(''([0-9-]+)''\\)')::date
         FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
         WHERE i.inhparent = $1::text::regclass ORDER BY 1",
        &[&table],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn service(db: &TestDb, clock: &Clock, history_days: u32, data_days: u32) -> Retention {
    Retention {
        store: db.store().clone(),
        clock: clock.clone(),
        outbox_days: 7,
        history_days,
        data_days,
        batch: 20,
        every: Duration::from_secs(600),
        deadline: Duration::from_secs(30),
    }
}

/// Every morning of a year, three tenants write a day of metrics, revenue events, a cycle
/// with actions, outbox rows, evaluations, reports, decisions, a load, a deviation and a
/// notification, and the retention pass runs first by the simulated clock. The tables stop
/// growing: the outbox holds only its last 7 days, the history only its last 30, and
/// metric_snapshots and revenue_events only the months not yet entirely older than 30 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_simulated_year_of_mornings_bounded() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO tenants (tenant_id) VALUES ('10000000-0000-4000-8000-000000000001'),
             ('10000000-0000-4000-8000-000000000002'), ('10000000-0000-4000-8000-000000000003')",
    )
    .await
    .unwrap();
    c.batch_execute(SIM_SQL).await.unwrap();
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 6, 0, 0).unwrap();
    let clock = Clock::manual(start);
    let (history_days, data_days) = (30u32, 30u32);
    let retention = service(&db, &clock, history_days, data_days);
    let started = std::time::Instant::now();
    let mut at_day_200 = Vec::new();
    let mut most_metric_rows = 0;
    for n in 0..365u32 {
        let now = start + chrono::Duration::days(i64::from(n));
        clock.set(now);
        assert_eq!(
            retention.run_once().await.unwrap(),
            Next::Interval,
            "day {n}"
        );
        c.execute("SELECT pg_temp.sim_day($1, $2)", &[&now, &(n as i32)])
            .await
            .unwrap();
        let today = now.date_naive();
        let horizon = today - Days::new(u64::from(data_days));
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM metric_snapshots), (SELECT count(*) FROM revenue_events)",
                &[],
            )
            .await
            .unwrap();
        let (metric_rows, event_rows): (i64, i64) = (row.get(0), row.get(1));
        if n >= data_days {
            // (From the first day the writes began is older than the horizon.) Whole months
            // go: what is kept reaches back to the first of the horizon's month, one row per
            // metric, tenant and day.
            let kept_days = (today - month_of(horizon)).num_days();
            assert_eq!(metric_rows, 9 * kept_days, "day {n}");
            assert_eq!(event_rows, 3 * kept_days, "day {n}");
            most_metric_rows = most_metric_rows.max(metric_rows);
        }
        if n == 200 {
            at_day_200 = counts(&c).await;
        }
    }
    let took = started.elapsed();
    let now = clock.now();
    let today = now.date_naive();

    // The history stopped growing: the same rows at day 200 as at day 365.
    let at_day_365 = counts(&c).await;
    assert_eq!(at_day_200, at_day_365);
    assert!(at_day_365.iter().all(|(_, n)| *n > 0), "{at_day_365:?}");
    // Only the last 7 days of outbox rows, the last 30 of everything else.
    let outbox_before = now - chrono::Duration::days(7);
    let history_before = now - chrono::Duration::days(i64::from(history_days));
    for (table, at) in HISTORY {
        let oldest: Option<DateTime<Utc>> = c
            .query_one(&format!("SELECT min({at}) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        let Some(oldest) = oldest else { continue };
        let before = if table == "outbox" {
            outbox_before
        } else if table == "deviations" {
            // A deviation is dated by its metric day (yesterday's, each morning).
            history_before - chrono::Duration::days(1)
        } else {
            history_before
        };
        assert!(oldest >= before, "{table}: {oldest} is older than {before}");
    }
    let outbox_days = db
        .count("SELECT count(DISTINCT published_at) FROM outbox")
        .await;
    assert_eq!(outbox_days, 8, "today and the 7 days before");
    assert_eq!(
        db.count("SELECT count(*) FROM cycles").await,
        3 * (i64::from(history_days) + 1)
    );

    // metric_snapshots and revenue_events: the months from the horizon's to the current one
    // and the two ahead; every older one dropped (only months the database clock made at
    // migrate time, all after this simulated year, besides).
    let horizon = today - Days::new(u64::from(data_days));
    let last = month_of(today) + Months::new(MONTHS_AHEAD);
    let mut expected = vec![month_of(horizon)];
    let mut next = month_of(horizon) + Months::new(1);
    while next <= last {
        expected.push(next);
        next = next + Months::new(1);
    }
    for table in ["metric_snapshots", "revenue_events"] {
        let months = partition_months(&c, table).await;
        let in_year: Vec<NaiveDate> = months.iter().copied().filter(|m| *m <= last).collect();
        assert_eq!(in_year, expected, "{table}: {months:?}");
        assert!(months.len() <= expected.len() + 3, "{table}: {months:?}");
    }
    assert!(
        most_metric_rows <= 9 * (i64::from(data_days) + 31),
        "{most_metric_rows}"
    );
    eprintln!(
        "a simulated year: {took:?}; kept {at_day_365:?}; metric_snapshots at most {most_metric_rows} rows"
    );
    db.cleanup().await;
}

/// However old, a cycle is kept while one of its actions is live (held, pending, published,
/// acknowledged, applied, reverting, or a revert that failed) or one of its messages (an
/// outbox row, or an action that is its own entry) is unpublished; an old cycle whose actions are all finished goes with everything hanging off
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_an_old_cycle_with_a_live_action() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let tenant = Uuid::from_u128(0x2000_0000_0000_4000_8000_0000_0000_0001);
    c.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", &[&tenant])
        .await
        .unwrap();
    c.batch_execute(SIM_SQL).await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 6, 0, 0).unwrap();
    let old = now - chrono::Duration::days(100);
    let mut kept = Vec::new();
    for (i, status) in [
        "pending_approval",
        "pending",
        "published",
        "acknowledged",
        "applied",
        "reverting",
        "revert_failed",
    ]
    .iter()
    .enumerate()
    {
        let statuses = vec!["concluded".to_owned(), (*status).to_owned()];
        let cycle: Uuid = c
            .query_one(
                "SELECT pg_temp.sim_cycle($1, $2, $3, $4, true)",
                &[&tenant, &old, &format!("live-{i}"), &statuses],
            )
            .await
            .unwrap()
            .get(0);
        kept.push(cycle);
    }
    let unpublished: Uuid = c
        .query_one(
            "SELECT pg_temp.sim_cycle($1, $2, 'unpublished', ARRAY['concluded'], false)",
            &[&tenant, &old],
        )
        .await
        .unwrap()
        .get(0);
    kept.push(unpublished);
    // A finished action that is its own outbox entry (V27) and was never confirmed.
    let own: Uuid = c
        .query_one(
            "SELECT pg_temp.sim_cycle($1, $2, 'own-entry', ARRAY['failed'], true)",
            &[&tenant, &old],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        r#"UPDATE actions SET outbox_id = revenue_os.outbox_id(),
                  message = '{"exchange": "sim.actions", "routing_key": "scale.x",
                              "message_id": "own-entry", "headers": {}, "head": {}}'
            WHERE cycle_id = $1"#,
        &[&own],
    )
    .await
    .unwrap();
    kept.push(own);
    let finished: Uuid = c
        .query_one(
            "SELECT pg_temp.sim_cycle($1, $2, 'finished',
                     ARRAY['concluded', 'failed', 'rejected', 'reverted', 'superseded',
                           'expired'], true)",
            &[&tenant, &old],
        )
        .await
        .unwrap()
        .get(0);
    let recent: Uuid = c
        .query_one(
            "SELECT pg_temp.sim_cycle($1, $2, 'recent', ARRAY['concluded'], true)",
            &[&tenant, &(now - chrono::Duration::days(1))],
        )
        .await
        .unwrap()
        .get(0);
    kept.push(recent);

    let clock = Clock::manual(now);
    service(&db, &clock, 30, 0).run_once().await.unwrap();

    let left: BTreeSet<Uuid> = c
        .query("SELECT cycle_id FROM cycles", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, kept.iter().copied().collect::<BTreeSet<_>>());
    for (table, per_cycle) in [
        ("actions", None),
        ("watchdog_evaluations", None),
        ("action_reports", None),
        ("approval_decisions", None),
        ("data_quality_actions", Some(1)),
    ] {
        let gone = db
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE cycle_id = '{finished}'"
            ))
            .await;
        assert_eq!(gone, 0, "{table} of the finished cycle");
        let live = db
            .count(&format!(
                "SELECT count(*) FROM {table} WHERE cycle_id = '{}'",
                kept[4]
            ))
            .await;
        assert_eq!(
            live,
            per_cycle.unwrap_or(2),
            "{table} of the applied action's cycle"
        );
    }
    // The outbox rows of the cycles kept are kept too, the published ones older than
    // outbox_days aside (V16): an unpublished row, never.
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE cycle_id = '{unpublished}' AND published_at IS NULL"
        ))
        .await,
        2
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE cycle_id = '{finished}'"
        ))
        .await,
        0
    );
    db.cleanup().await;
}
