//! `ingest`: bulk loads of many tenants' rows in one transaction, as the worker's role under
//! row-level security: what lands, replays, invalid files, quarantine, restatements,
//! snapshots, a load killed mid-transaction, and the staging path's isolation.

use crate::common::db::{TestDb, connect};
use crate::common::*;
use revenue_os::app::ingest::{IngestOptions, load};
use revenue_os::contract::*;
use revenue_os::ingest::{Format, Kind, Limits};
use revenue_os::store::*;
use revenue_os::{Error, app};
use std::fmt::Write as _;
use std::io::Cursor;
use uuid::Uuid;

pub(crate) fn opts(kind: Kind) -> IngestOptions {
    IngestOptions {
        kind,
        format: Format::Csv,
        source: "test.csv".into(),
        load_id: None,
        snapshot: false,
        quarantine: false,
        trigger: false,
        limits: Limits::default(),
    }
}

pub(crate) async fn run_load(
    db: &TestDb,
    text: &str,
    opts: &IngestOptions,
) -> Result<(LoadReport, bool), Error> {
    load(
        db.store(),
        &catalog(),
        Cursor::new(text.as_bytes().to_vec()),
        opts,
    )
    .await
}

fn tenant(i: usize) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 + i as u128)
}

/// `n` bare tenants (no targets), created by the admin.
async fn tenants(db: &TestDb, n: usize) {
    let ids: Vec<Uuid> = (0..n).map(tenant).collect();
    db.client()
        .await
        .execute(
            "INSERT INTO tenants (tenant_id) SELECT unnest($1::uuid[])",
            &[&ids],
        )
        .await
        .unwrap();
}

const METRICS: [&str; 3] = ["pipeline_total", "cac_blended", "win_rate"];

/// 50 tenants × 3 metrics × 4 days, a value that says which.
fn fifty_tenant_file() -> String {
    let mut s = String::from("tenant_id,metric_id,date,value\n");
    for t in 0..50 {
        for (m, metric) in METRICS.iter().enumerate() {
            for d in 1..=4 {
                let v = t as f64 * 1000.0 + m as f64 * 10.0 + d as f64 + 0.25;
                writeln!(s, "{},{metric},2026-11-0{d},{v}", tenant(t)).unwrap();
            }
        }
    }
    s
}

fn window_trigger() -> (Trigger, chrono::DateTime<chrono::Utc>, DateRange) {
    let trigger = Trigger {
        kind: TriggerType::Manual,
        source: "test".into(),
        triggered_at: "2026-11-05T06:00:00Z".into(),
    };
    let at = parse_timestamp(&trigger.triggered_at).unwrap();
    let window = DateRange::new(
        parse_date("2026-11-01").unwrap(),
        parse_date("2026-11-04").unwrap(),
    )
    .unwrap();
    (trigger, at, window)
}

#[tokio::test]
async fn a_fifty_tenant_file_loads_assembles_and_replays_as_a_no_op() {
    let db = TestDb::new().await;
    tenants(&db, 50).await;
    let file = fifty_tenant_file();
    let (r, replayed) = run_load(&db, &file, &opts(Kind::Metrics)).await.unwrap();
    assert!(!replayed);
    assert_eq!(
        (
            r.rows,
            r.inserted,
            r.updated,
            r.unchanged,
            r.rejected,
            r.removed
        ),
        (600, 600, 0, 0, 0, 0)
    );
    assert_eq!(r.tenants.len(), 50);
    assert_eq!(r.load_id.len(), 64, "SHA-256 of kind and bytes");

    let (trigger, at, window) = window_trigger();
    for t in [0, 17, 49] {
        let a = db
            .store()
            .assemble(tenant(t), &trigger, at, window)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.input.metrics.len(), 12);
        let p = a
            .input
            .metrics
            .iter()
            .find(|m| m.metric_id == "cac_blended" && m.date == "2026-11-03")
            .unwrap();
        assert_eq!(p.value, t as f64 * 1000.0 + 10.0 + 3.0 + 0.25);
    }

    let stamp = "SELECT extract(epoch FROM max(updated_at))::float8::text || count(*)::text
                 FROM metric_snapshots";
    let before: String = db
        .client()
        .await
        .query_one(stamp, &[])
        .await
        .unwrap()
        .get(0);
    let (again, replayed) = run_load(&db, &file, &opts(Kind::Metrics)).await.unwrap();
    assert!(replayed, "the same bytes are the same load");
    assert_eq!(again, r, "a replay reports the recorded load");
    let after: String = db
        .client()
        .await
        .query_one(stamp, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after, "a replay changes nothing");
    assert_eq!(db.count("SELECT count(*) FROM loads").await, 1);

    // A new load id over the same rows: loaded again, every row unchanged.
    let mut o = opts(Kind::Metrics);
    o.load_id = Some("nightly-2".into());
    let (r2, replayed) = run_load(&db, &file, &o).await.unwrap();
    assert!(!replayed);
    assert_eq!((r2.inserted, r2.updated, r2.unchanged), (0, 0, 600));
    // And the same id given again is a replay without reading a row.
    let (r3, replayed) = run_load(&db, "not even csv", &o).await.unwrap();
    assert!(replayed);
    assert_eq!(r3.load_id, "nightly-2");
    let listed = db.store().loads(Some(tenant(3)), 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].load_id, "nightly-2", "newest first");
    db.cleanup().await;
}

/// The 50-tenant file with three bad rows: lines 4 (bad date), 9 (unknown metric) and 12
/// (unknown tenant).
fn three_bad_rows() -> String {
    let good = fifty_tenant_file();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[3] = format!("{},pipeline_total,2026-11-31,1", tenant(0));
    lines[8] = format!("{},pipeline_totl,2026-11-01,1", tenant(0));
    lines[11] = format!("{},pipeline_total,2026-11-01,1", Uuid::from_u128(7));
    lines.join("\n") + "\n"
}

#[tokio::test]
async fn three_bad_rows_name_their_lines_and_write_nothing() {
    let db = TestDb::new().await;
    tenants(&db, 50).await;
    let Err(Error::Kernel(e)) = run_load(&db, &three_bad_rows(), &opts(Kind::Metrics)).await else {
        panic!("an invalid file must be refused")
    };
    assert_eq!(e.code, ErrorCode::InvalidInput);
    let v = e.violations();
    let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["line 4: date", "line 9: metric_id", "line 12: tenant_id"]
    );
    assert!(v[2].problem.contains("does not exist"), "{v:?}");
    assert_eq!(
        e.message,
        "the file is invalid: 3 problems; nothing was loaded"
    );
    for t in ["metric_snapshots", "loads", "ingest_rejects"] {
        assert_eq!(
            db.count(&format!("SELECT count(*) FROM {t}")).await,
            0,
            "{t}"
        );
    }

    // The same file, quarantined: the rest loads, the three are kept with line and problem.
    let mut o = opts(Kind::Metrics);
    o.quarantine = true;
    let (r, _) = run_load(&db, &three_bad_rows(), &o).await.unwrap();
    assert_eq!((r.rows, r.inserted, r.rejected), (600, 597, 3));
    let c = db.client().await;
    let rejects: Vec<(i64, String)> = c
        .query(
            "SELECT line, problem FROM ingest_rejects WHERE load_id = $1 ORDER BY line",
            &[&r.load_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rejects.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![4, 9, 12]
    );
    assert!(
        rejects[0].1.contains("is not a YYYY-MM-DD date"),
        "{rejects:?}"
    );
    assert_eq!(db.count("SELECT count(*) FROM metric_snapshots").await, 597);
    // The console's query: a tenant sees its own rejects.
    let (loads, mine) = db.store().tenant_loads(tenant(0), 10).await.unwrap();
    assert_eq!(loads.len(), 1);
    assert_eq!(mine.iter().map(|r| r.line).collect::<Vec<_>>(), vec![4, 9]);
    db.cleanup().await;
}

#[tokio::test]
async fn one_key_with_two_values_in_a_file_is_refused_and_identical_repeats_are_one_row() {
    let db = TestDb::new().await;
    tenants(&db, 1).await;
    let t = tenant(0);
    let file = format!(
        "tenant_id,metric_id,date,value\n\
         {t},pipeline_total,2026-11-01,1\n\
         {t},pipeline_total,2026-11-01,1\n\
         {t},cac_blended,2026-11-01,5\n\
         {t},cac_blended,2026-11-01,6\n"
    );
    let Err(Error::Kernel(e)) = run_load(&db, &file, &opts(Kind::Metrics)).await else {
        panic!()
    };
    let paths: Vec<String> = e.violations().into_iter().map(|v| v.path).collect();
    assert_eq!(paths, vec!["line 4", "line 5"]);
    let fixed = file.replace(",6\n", ",5\n");
    let (r, _) = run_load(&db, &fixed, &opts(Kind::Metrics)).await.unwrap();
    assert_eq!((r.rows, r.inserted, r.unchanged), (4, 2, 2));
    db.cleanup().await;
}

/// The worker's rules without the spacing between cycles, so one test can run several; it
/// keeps the open pipeline (sum of open opportunities' amounts) each cycle decided on.
struct Policy(revenue_os::worker::Rules, std::sync::Mutex<Vec<f64>>);

impl CyclePolicy for Policy {
    fn admit(
        &self,
        _: Option<&LastCycle>,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), KernelError> {
        Ok(())
    }
    fn decide(
        &self,
        input: KernelInput,
        levers: &Levers,
        now: chrono::DateTime<chrono::Utc>,
        cycle_id: Uuid,
    ) -> Result<KernelOutput, KernelError> {
        let open = input.opportunities.iter().map(|o| o.amount).sum();
        self.1.lock().unwrap().push(open);
        self.0.decide(input, levers, now, cycle_id)
    }
    fn plan(
        &self,
        _: Uuid,
        _: &Result<KernelOutput, KernelError>,
        _: CycleStatus,
        _: &ApprovalFacts,
    ) -> Plan {
        Plan::default()
    }
}

/// A cycle of the fixture tenant now: its diagnosis, and the open pipeline it decided on.
async fn cycle(db: &TestDb, input: &KernelInput, message_id: &str) -> (String, f64) {
    let req = crate::cycle::request(input, message_id);
    let policy = Policy(rules(), Default::default());
    let out = db
        .store()
        .run_cycle(&req, fixture_now(), &policy)
        .await
        .unwrap();
    let open = policy.1.lock().unwrap()[0];
    let CycleOutcome::Recorded {
        result: Ok(output), ..
    } = out
    else {
        panic!("{out:?}")
    };
    (output.cycle_summary.diagnosis, open)
}

async fn cycle_diagnosis(db: &TestDb, input: &KernelInput, message_id: &str) -> String {
    cycle(db, input, message_id).await.0
}

#[tokio::test]
async fn a_restated_day_updates_and_the_next_cycle_sees_it() {
    let (db, input) = imported().await;
    let before = cycle_diagnosis(&db, &input, "before").await;
    assert!(before.contains("pipeline_total is 430,892"), "{before}");
    let last = input
        .metrics
        .iter()
        .filter(|m| m.metric_id == "pipeline_total" && m.dimension.is_none())
        .max_by(|a, b| a.date.cmp(&b.date))
        .unwrap()
        .clone();
    let file = format!(
        "tenant_id,metric_id,date,value,dimension\n\
         {},pipeline_total,{},{},\n\
         {},pipeline_total,{},612345,\n",
        input.tenant_id, last.date, last.value, input.tenant_id, last.date
    );
    // A restatement is a new value for an existing key; the first row repeats it as it was,
    // the second restates it: one key, two values, so that file is refused ...
    assert!(run_load(&db, &file, &opts(Kind::Metrics)).await.is_err());
    // ... and the restatement alone updates the one day.
    let restated: String = file
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let (r, _) = run_load(&db, &restated, &opts(Kind::Metrics))
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 0));
    let after = cycle_diagnosis(&db, &input, "after").await;
    assert!(after.contains("pipeline_total is 612,345"), "{after}");
    db.cleanup().await;
}

#[tokio::test]
async fn an_opportunity_missing_from_a_snapshot_stops_counting() {
    let (db, input) = imported().await;
    let before = assemble(&db, &input).await;
    let open: f64 = before.opportunities.iter().map(|o| o.amount).sum();
    // The biggest opportunity closed in the CRM: today's export no longer lists it.
    let gone = before
        .opportunities
        .iter()
        .max_by(|a, b| a.amount.total_cmp(&b.amount))
        .unwrap()
        .clone();
    let mut file = String::from("tenant_id,id,stage,amount,expected_close_date,win_probability\n");
    for o in before.opportunities.iter().filter(|o| o.id != gone.id) {
        writeln!(
            file,
            "{},{},{},{},{},{}",
            input.tenant_id, o.id, o.stage, o.amount, o.expected_close_date, o.win_probability
        )
        .unwrap();
    }
    let (_, pipeline_before) = cycle(&db, &input, "before").await;
    assert!((pipeline_before - open).abs() < 1e-6);
    let mut o = opts(Kind::Opportunities);
    o.snapshot = true;
    let (r, _) = run_load(&db, &file, &o).await.unwrap();
    assert_eq!((r.inserted, r.updated, r.removed), (0, 0, 1));
    assert_eq!(
        r.unchanged as usize,
        before.opportunities.len() - 1,
        "the rest are as they were"
    );
    let after = assemble(&db, &input).await;
    assert!(after.opportunities.iter().all(|o| o.id != gone.id));
    let open_after: f64 = after.opportunities.iter().map(|o| o.amount).sum();
    assert!((open - gone.amount - open_after).abs() < 1e-6);
    let removed_by: Option<String> = db
        .client()
        .await
        .query_one(
            "SELECT removed_by_load FROM opportunities WHERE id = $1",
            &[&gone.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(removed_by.as_deref(), Some(r.load_id.as_str()));
    // The next cycle decides on the open pipeline without it.
    let (_, pipeline_after) = cycle(&db, &input, "after").await;
    assert!((pipeline_before - gone.amount - pipeline_after).abs() < 1e-6);

    // It reopens: back in the next snapshot, it counts again.
    writeln!(
        file,
        "{},{},{},{},{},{}",
        input.tenant_id,
        gone.id,
        gone.stage,
        gone.amount,
        gone.expected_close_date,
        gone.win_probability
    )
    .unwrap();
    let (r, _) = run_load(&db, &file, &o).await.unwrap();
    assert_eq!((r.updated, r.removed), (1, 0));
    assert_eq!(
        assemble(&db, &input).await.opportunities.len(),
        before.opportunities.len()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_load_killed_mid_transaction_leaves_no_rows_and_no_record() {
    let db = TestDb::new().await;
    tenants(&db, 50).await;
    let path = std::env::temp_dir().join(format!("ingest-kill-{}.csv", Uuid::new_v4()));
    std::fs::write(&path, fifty_tenant_file()).unwrap();
    // The admin holds the table the merge writes, so the load stops inside its transaction,
    // after staging and after writing its `loads` row (at its months, or at the merge).
    let admin = db.client().await;
    admin
        .batch_execute("BEGIN; LOCK TABLE metric_snapshots IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["ingest", "--kind", "metrics"])
        .arg(&path)
        .env("DATABASE_URL", db.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(path.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    // Watched from another session: pg_stat_activity is a snapshot per transaction.
    let watch = db.client().await;
    let waiting = "SELECT pid FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND (query LIKE '%metric_snapshots%'
                          OR query LIKE '%ensure_month_partitions%')";
    let mut seen = None;
    for _ in 0..600 {
        if let Some(r) = watch.query_opt(waiting, &[]).await.unwrap() {
            seen = Some(r.get::<_, i32>(0));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let Some(pid) = seen else {
        let activity: Vec<String> = watch
            .query(
                "SELECT coalesce(wait_event_type, '') || ' ' || state || ' ' || left(query, 120)
                 FROM pg_stat_activity WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        panic!(
            "the load never reached its merge: {:?} {} {activity:#?}",
            child.try_wait(),
            std::fs::read_to_string(path.with_extension("err")).unwrap_or_default()
        );
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Its backend, waiting on the lock, notices the closed connection once it runs again:
    // release the lock, and it finds no client to answer and rolls the transaction back.
    admin.batch_execute("COMMIT").await.unwrap();
    for _ in 0..600 {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(db.count("SELECT count(*) FROM metric_snapshots").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM loads").await, 0);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("err"));
    // The same file then loads whole.
    let (r, replayed) = run_load(&db, &fifty_tenant_file(), &opts(Kind::Metrics))
        .await
        .unwrap();
    assert_eq!((r.inserted, replayed), (600, false));
    db.cleanup().await;
}

#[tokio::test]
async fn the_staging_path_shows_a_worker_no_other_tenants_rows() {
    let db = TestDb::new().await;
    tenants(&db, 2).await;
    let (a, b) = (tenant(0), tenant(1));
    let file = format!(
        "tenant_id,metric_id,date,value\n{a},pipeline_total,2026-11-01,1\n\
         {b},pipeline_total,2026-11-01,2\n"
    );
    let (done, _) = run_load(&db, &file, &opts(Kind::Metrics)).await.unwrap();

    // The loader's own scope, by hand as the worker: a load whose file names only A.
    let w = connect(&db.worker_url()).await;
    w.batch_execute(
        "BEGIN;
         CREATE TEMPORARY TABLE ingest_staging (line bigint, tenant_id uuid) ON COMMIT DROP",
    )
    .await
    .unwrap();
    w.execute("INSERT INTO pg_temp.ingest_staging VALUES (2, $1)", &[&a])
        .await
        .unwrap();
    w.execute(
        "INSERT INTO loads (load_id, kind, source, started_at, tenants)
         SELECT 'only-a', 'metrics', 't', now(), array_agg(DISTINCT tenant_id)
         FROM pg_temp.ingest_staging",
        &[],
    )
    .await
    .unwrap();
    w.batch_execute("SELECT set_config('revenue_os.load_id', 'only-a', true)")
        .await
        .unwrap();
    let seen = |sql: &'static str| {
        let w = &w;
        async move {
            w.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, Uuid>(0))
                .collect::<Vec<Uuid>>()
        }
    };
    // A forged query for every tenant's rows finds only A's: staging names no other.
    assert_eq!(
        seen("SELECT tenant_id FROM metric_snapshots").await,
        vec![a]
    );
    assert_eq!(seen("SELECT tenant_id FROM tenants").await, vec![a]);
    // A merge through staging that names B is refused by the policy's check.
    let e = w
        .execute(
            "INSERT INTO metric_snapshots (tenant_id, metric_id, date, value)
             VALUES ($1, 'pipeline_total', '2026-11-02', 9)",
            &[&b],
        )
        .await
        .unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(
        e.code(),
        &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE
    );
    assert!(e.message().contains("row-level security"), "{e}");
    w.batch_execute("ROLLBACK").await.unwrap();

    // Another worker session: the in-flight load's scope is not its own (the row is
    // uncommitted), and a committed load's scope admits nothing.
    let other = connect(&db.worker_url()).await;
    for id in ["only-a", done.load_id.as_str()] {
        other.batch_execute("BEGIN").await.unwrap();
        other
            .execute("SELECT set_config('revenue_os.load_id', $1, true)", &[&id])
            .await
            .unwrap();
        let n: i64 = other
            .query_one("SELECT count(*) FROM metric_snapshots", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "load id {id}");
        other.batch_execute("ROLLBACK").await.unwrap();
    }

    // Another session's staging table cannot be read at all, even once its creation is
    // committed and the other session knows its schema.
    w.batch_execute("CREATE TEMPORARY TABLE ingest_staging (line bigint, tenant_id uuid)")
        .await
        .unwrap();
    w.execute("INSERT INTO pg_temp.ingest_staging VALUES (2, $1)", &[&b])
        .await
        .unwrap();
    let schema: String = w
        .query_one(
            "SELECT nspname::text FROM pg_namespace WHERE oid = pg_my_temp_schema()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let e = other
        .query(
            &format!("SELECT tenant_id FROM {schema}.ingest_staging"),
            &[],
        )
        .await
        .unwrap_err();
    let e = e.as_db_error().unwrap().message().to_owned();
    assert!(
        e.contains("temporary tables of other sessions") || e.contains("permission denied"),
        "{e}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn the_binary_exits_2_with_an_invalid_input_document() {
    let db = TestDb::new().await;
    tenants(&db, 50).await;
    let path = std::env::temp_dir().join(format!("ingest-bad-{}.csv", Uuid::new_v4()));
    std::fs::write(&path, three_bad_rows()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["ingest", "--kind", "metrics"])
        .arg(&path)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let doc: KernelError = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.code, ErrorCode::InvalidInput);
    assert_eq!(doc.violations().len(), 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["ingest", "--kind", "metrics", "--quarantine"])
        .arg(&path)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rejected"], 3);
    assert_eq!(summary["inserted"], 597);
    assert_eq!(summary["tenants"], 50);
    assert_eq!(summary["replayed"], false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["loads", "--limit", "5"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let _ = std::fs::remove_file(&path);
    let _ = app::ingest::summary; // the CLI's output shape is this function's
    db.cleanup().await;
}

#[tokio::test]
async fn a_follow_up_service_claims_each_load_once() {
    let db = TestDb::new().await;
    tenants(&db, 50).await;
    run_load(&db, &fifty_tenant_file(), &opts(Kind::Metrics))
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(60);
    let (one, two) = tokio::join!(
        db.store().claim_load_follow_ups(10, lease),
        db.store().claim_load_follow_ups(10, lease)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.len() + two.len(), 1, "claimed once");
    let claimed = one.into_iter().chain(two).next().unwrap();
    assert_eq!(claimed.tenant_count, 50);
    // Its tenants come a page at a time, in the load's order, and nothing past the end.
    let store = db.store();
    let whole = store.load_tenants(&claimed.load_id, 0, 1000).await.unwrap();
    assert_eq!(whole.len(), 50);
    let mut paged = Vec::new();
    for from in (0..70).step_by(20) {
        paged.extend(
            store
                .load_tenants(&claimed.load_id, from, 20)
                .await
                .unwrap(),
        );
    }
    assert_eq!(paged, whole);
    assert_eq!(
        store
            .load_tenants(&claimed.load_id, 40, 20)
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(
        store
            .load_tenants(&claimed.load_id, 50, 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .load_tenants("no-such-load", 0, 20)
            .await
            .unwrap()
            .is_empty()
    );
    let listed: std::collections::HashSet<Uuid> = whole.into_iter().collect();
    assert_eq!(listed, (0..50).map(tenant).collect());
    assert!(db.store().load_followed_up(&claimed.load_id).await.unwrap());
    assert!(!db.store().load_followed_up(&claimed.load_id).await.unwrap());
    assert!(
        db.store()
            .claim_load_follow_ups(10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    db.cleanup().await;
}

fn tenants_line(t: Uuid, cac_max: f64, config: bool) -> String {
    let config = match config {
        true => r#","config":{"risk_tolerance":"low","min_sample_size":200}"#,
        false => "",
    };
    format!(
        r#"{{"tenant_id":"{t}","targets":{{"pipeline_total":500000,"cac_max":{cac_max}}},"guardrails":{{"allowed_levers":["campaigns","channels"],"max_daily_spend":2000}}{config}}}"#
    )
}

fn ndjson(kind: Kind) -> IngestOptions {
    IngestOptions {
        format: Format::Ndjson,
        source: "tenants.ndjson".into(),
        ..opts(kind)
    }
}

#[tokio::test]
async fn a_tenants_load_creates_and_restates_settings_and_refuses_bad_ones() {
    let db = TestDb::new().await;
    let file = [
        tenants_line(tenant(0), 1200.0, true),
        tenants_line(tenant(1), 900.0, false),
        tenants_line(tenant(2), 1500.0, true),
    ]
    .join("\n");
    let (r, replayed) = run_load(&db, &file, &ndjson(Kind::Tenants)).await.unwrap();
    assert!(!replayed);
    assert_eq!(
        (r.rows, r.inserted, r.updated, r.unchanged, r.tenants.len()),
        (3, 3, 0, 0, 3)
    );

    // The tenants exist for a metrics load, and a cycle's assembly reads their settings.
    let (r, _) = run_load(&db, &fifty_tenant_file_of(3), &opts(Kind::Metrics))
        .await
        .unwrap();
    assert_eq!((r.inserted, r.rejected), (36, 0));
    let (trigger, at, window) = window_trigger();
    let a = db
        .store()
        .assemble(tenant(0), &trigger, at, window)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.input.targets.cac_max, Some(1200.0));
    assert_eq!(a.input.guardrails.max_daily_spend, Some(2000.0));
    let config = a.input.config.expect("config loaded");
    assert_eq!(config.min_sample_size, Some(200.0));

    // Restated: tenant 0's CAC ceiling moves, tenant 2's config goes, tenant 1 is as it was.
    let file = [
        tenants_line(tenant(0), 1100.0, true),
        tenants_line(tenant(1), 900.0, false),
        tenants_line(tenant(2), 1500.0, false),
    ]
    .join("\n");
    let (r, _) = run_load(&db, &file, &ndjson(Kind::Tenants)).await.unwrap();
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 2, 1));
    let a = db
        .store()
        .assemble(tenant(2), &trigger, at, window)
        .await
        .unwrap()
        .unwrap();
    assert!(a.input.config.is_none());

    // The contract's rules, per line, and nothing written.
    let bad = [
        tenants_line(tenant(3), 1000.0, false),
        tenants_line(tenant(4), -5.0, false),
        format!(
            r#"{{"tenant_id":"{}","targets":{{"cac_max":10}},"guardrails":{{"allowed_levers":["coupons"]}}}}"#,
            tenant(5)
        ),
    ]
    .join("\n");
    let Err(Error::Kernel(e)) = run_load(&db, &bad, &ndjson(Kind::Tenants)).await else {
        panic!("invalid settings loaded");
    };
    let text = serde_json::to_string(&e).unwrap();
    assert!(text.contains("line 2: targets.cac_max"), "{text}");
    assert!(text.contains("line 3: guardrails"), "{text}");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM tenants WHERE tenant_id = '{}'",
            tenant(3)
        ))
        .await,
        0
    );

    // Nested objects have no CSV form.
    let Err(Error::Kernel(e)) = run_load(&db, "tenant_id,targets\n", &opts(Kind::Tenants)).await
    else {
        panic!("a CSV tenants file was read");
    };
    assert!(serde_json::to_string(&e).unwrap().contains("NDJSON only"));
    db.cleanup().await;
}

/// The fifty-tenant file's rows for its first `n` tenants.
fn fifty_tenant_file_of(n: usize) -> String {
    let file = fifty_tenant_file();
    let mut lines = file.lines();
    let mut s = format!("{}\n", lines.next().unwrap_or_default());
    for l in lines.take(n * METRICS.len() * 4) {
        s.push_str(l);
        s.push('\n');
    }
    s
}
