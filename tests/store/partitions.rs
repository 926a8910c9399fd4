//! metric_snapshots and revenue_events by month (migrations/V17): the upgrade moves the rows
//! with their policies and grants, every writer creates the months it writes, a restated
//! event date moves its row, and a partition read directly shows nothing.

use crate::common::db::{TestDb, connect};
use crate::common::*;
use crate::ingest::{opts, run_load};
use chrono::NaiveDate;
use revenue_os::ingest::Kind;
use revenue_os::store::*;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

mod embedded {
    refinery::embed_migrations!("migrations");
}

const A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The months a table has a partition for, oldest first.
async fn months(c: &Client, table: &str) -> Vec<NaiveDate> {
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

/// The partitions of `table`, by name.
async fn partitions(c: &Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT i.inhrelid::regclass::text FROM pg_inherits i
         WHERE i.inhparent = $1::text::regclass ORDER BY 1",
        &[&table],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A database at V16 with rows in both tables over three months, upgraded: every row is in
/// its month, the parents keep their policies, FORCE and the worker's grants (copied, so a
/// running worker goes on without `migrate --grant-to`), and the worker still sees exactly
/// its tenant's rows.
#[tokio::test]
async fn the_upgrade_moves_the_rows_into_months_with_their_policies_and_grants() {
    let db = TestDb::unmigrated(4).await;
    let mut owner = connect(&db.owner_url()).await;
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(16))
        .run_async(&mut owner)
        .await
        .unwrap();
    db.store().grant_worker(WORKER_ROLE).await.unwrap();
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (tenant_id) VALUES ('{A}'), ('{B}');
             INSERT INTO metric_snapshots (tenant_id, metric_id, date, value)
             SELECT t, 'pipeline_total', d::date, 1 FROM unnest(ARRAY['{A}'::uuid, '{B}'])
                 t, generate_series(DATE '2025-11-20', DATE '2026-01-10', interval '1 day') d;
             INSERT INTO revenue_events (tenant_id, id, type, amount, effective_date)
             SELECT t, 'e' || g, 'new_booking', g, DATE '2025-10-30' + g
             FROM unnest(ARRAY['{A}'::uuid, '{B}']) t, generate_series(1, 40) g;"
        ))
        .await
        .unwrap();
    // V17 alone: later migrations add their own policies.
    let report = embedded::migrations::runner()
        .set_target(refinery::Target::Version(17))
        .run_async(&mut owner)
        .await
        .unwrap();
    assert_eq!(report.applied_migrations().len(), 1);

    assert_eq!(
        db.count("SELECT count(*) FROM metric_snapshots").await,
        2 * 52
    );
    assert_eq!(
        db.count("SELECT count(*) FROM revenue_events").await,
        2 * 40
    );
    for (table, first) in [
        ("metric_snapshots", "2025-11-01"),
        ("revenue_events", "2025-10-01"),
    ] {
        let m = months(&admin, table).await;
        assert_eq!(m.first(), Some(&date(first)), "{table}: {m:?}");
        for month in ["2025-11-01", "2025-12-01"] {
            assert!(m.contains(&date(month)), "{table}: {m:?}");
        }
        // Every row sits in its month: a partition holds nothing outside its bounds.
        let misplaced = db
            .count(&format!(
                "SELECT count(*) FROM {table} t
                 WHERE to_char(t.{col}, '\"_y\"YYYY\"m\"MM')
                       <> substring(t.tableoid::regclass::text FROM '_y[0-9]+m[0-9]+$')",
                col = if table == "metric_snapshots" {
                    "date"
                } else {
                    "effective_date"
                }
            ))
            .await;
        assert_eq!(misplaced, 0, "{table}");
        let r = admin
            .query_one(
                "SELECT c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
                        ARRAY(SELECT polname::text FROM pg_policy WHERE polrelid = c.oid
                              ORDER BY 1),
                        has_table_privilege($2, c.oid, 'SELECT')
                            AND has_table_privilege($2, c.oid, 'INSERT')
                            AND has_table_privilege($2, c.oid, 'UPDATE'),
                        has_table_privilege($2, c.oid, 'DELETE')
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&table, &WORKER_ROLE],
            )
            .await
            .unwrap();
        let (kind, on, forced, policies, dml, delete): (
            String,
            bool,
            bool,
            Vec<String>,
            bool,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        assert_eq!(kind, "p", "{table}");
        assert!(on && forced, "{table}");
        assert_eq!(
            policies,
            ["ingest_load", "owner_sweep", "tenant_isolation"],
            "{table}"
        );
        assert!(dml && !delete, "{table}");
    }
    // The worker, scoped to A, sees A's rows and none of B's, through the parents.
    let worker = connect(&db.worker_url()).await;
    worker.batch_execute("BEGIN").await.unwrap();
    worker
        .execute("SELECT set_config('revenue_os.tenant_id', $1, true)", &[&A])
        .await
        .unwrap();
    for (table, n) in [("metric_snapshots", 52i64), ("revenue_events", 40)] {
        let seen: i64 = worker
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, n, "{table}");
    }
    worker.batch_execute("COMMIT").await.unwrap();
    db.cleanup().await;
}

/// A partition read directly shows nothing to anyone but a superuser: the worker has no
/// privilege on it, and the owner meets row-level security with no policy.
#[tokio::test]
async fn a_partition_read_directly_shows_nothing() {
    let (db, _) = imported().await;
    let admin = db.client().await;
    for table in ["metric_snapshots", "revenue_events"] {
        let parts = partitions(&admin, table).await;
        assert!(!parts.is_empty(), "{table}");
        let with_rows = parts.last().unwrap();
        let mut any = false;
        for p in &parts {
            let n = db.count(&format!("SELECT count(*) FROM {p}")).await;
            any |= n > 0;
            let worker = connect(&db.worker_url()).await;
            let e = worker
                .query_one(&format!("SELECT count(*) FROM {p}"), &[])
                .await
                .unwrap_err();
            assert_eq!(
                e.code(),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE),
                "{p}: {e}"
            );
            let owner = connect(&db.owner_url()).await;
            let seen: i64 = owner
                .query_one(&format!("SELECT count(*) FROM {p}"), &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(seen, 0, "{p} as its owner");
            let on: bool = admin
                .query_one(
                    "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class
                     WHERE oid = $1::text::regclass",
                    &[p],
                )
                .await
                .unwrap()
                .get(0);
            assert!(on, "{p}");
        }
        assert!(any, "{table}: the import wrote rows ({with_rows})");
    }
    db.cleanup().await;
}

/// `import` and `ingest` create the months they write, however far from today: a backfill
/// of an old month, a document dated years ahead.
#[tokio::test]
async fn every_writer_creates_the_months_it_writes() {
    let db = TestDb::new().await;
    let admin = db.client().await;
    let mut doc = fixture(DEMAND_BOUND);
    doc.metrics[0].date = "2019-03-15".into();
    doc.revenue_events[0].effective_date = "2031-07-04".into();
    db.store().import(&doc, &catalog()).await.unwrap();
    assert!(
        months(&admin, "metric_snapshots")
            .await
            .contains(&date("2019-03-01"))
    );
    assert!(
        months(&admin, "revenue_events")
            .await
            .contains(&date("2031-07-01"))
    );
    assert_eq!(
        db.count("SELECT count(*) FROM metric_snapshots WHERE date = '2019-03-15'")
            .await,
        1
    );

    let t = &doc.tenant_id;
    let metrics = format!(
        "tenant_id,metric_id,date,value\n{t},pipeline_total,2018-02-03,1\n\
         {t},pipeline_total,2026-11-02,2\n"
    );
    run_load(&db, &metrics, &opts(Kind::Metrics)).await.unwrap();
    let events =
        format!("tenant_id,id,type,amount,effective_date\n{t},evt_new,new_booking,5,2032-01-01\n");
    run_load(&db, &events, &opts(Kind::RevenueEvents))
        .await
        .unwrap();
    assert!(
        months(&admin, "metric_snapshots")
            .await
            .contains(&date("2018-02-01"))
    );
    assert!(
        months(&admin, "revenue_events")
            .await
            .contains(&date("2032-01-01"))
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM metric_snapshots
             WHERE date IN ('2018-02-03', '2026-11-02') AND metric_id = 'pipeline_total'"
        )
        .await,
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM revenue_events WHERE effective_date = '2032-01-01'")
            .await,
        1
    );
    db.cleanup().await;
}

/// The database keys revenue_events by (tenant, id, date) now; a restated date, by `import`
/// or by `ingest`, still leaves one row per id, moved to its new month.
#[tokio::test]
async fn a_restated_event_date_moves_its_row() {
    let (db, mut doc) = imported().await;
    let events = db.count("SELECT count(*) FROM revenue_events").await;
    let id = doc.revenue_events[0].id.clone();
    let where_id = format!("SELECT effective_date FROM revenue_events WHERE id = '{id}'");
    let dates = |rows: Vec<tokio_postgres::Row>| -> Vec<NaiveDate> {
        rows.iter().map(|r| r.get(0)).collect()
    };
    let admin = db.client().await;

    doc.revenue_events[0].effective_date = "2026-09-03".into();
    db.store().import(&doc, &catalog()).await.unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM revenue_events").await,
        events
    );
    assert_eq!(
        dates(admin.query(&where_id, &[]).await.unwrap()),
        [date("2026-09-03")]
    );

    let t = Uuid::parse_str(&doc.tenant_id).unwrap();
    let csv =
        format!("tenant_id,id,type,amount,effective_date\n{t},{id},new_booking,5,2026-12-24\n");
    run_load(&db, &csv, &opts(Kind::RevenueEvents))
        .await
        .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM revenue_events").await,
        events
    );
    assert_eq!(
        dates(admin.query(&where_id, &[]).await.unwrap()),
        [date("2026-12-24")]
    );
    db.cleanup().await;
}
