//! `revenue-os audit` (issue 23): the 60-day simulation's trail as CSV lists every revert and
//! every measured outcome with its actor, and loads in Python's `csv` module; the export
//! streams a million rows with bounded memory; `/audit.csv` is for admins only.

use super::console::{get, post, start_console};
use super::operators::add;
use crate::common::amqp::TestBroker;
use crate::common::db::TestDb;
use revenue_os::contract::catalog::Catalog;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Python's csv module reads the export: (rows, columns per row all 8, events with actors).
const PY: &str = r#"
import csv, json, sys
rows = list(csv.DictReader(sys.stdin, strict=True))
assert all(len(r) == 8 and None not in r for r in rows), "ragged row"
print(json.dumps([[r["event"], r["actor_kind"], r["actor"], r["action_id"]] for r in rows]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulations_trail_lists_every_revert_and_outcome_and_loads_in_python() {
    let db = TestDb::unmigrated(8).await;
    let broker = TestBroker::new().await;
    let settings = crate::common::amqp::settings(&broker.prefix, &db);
    let sum = revenue_os::demo::simulation::run(settings, Catalog::embedded().unwrap(), |_| {})
        .await
        .unwrap();
    broker.cleanup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args([
            "audit",
            "--format",
            "csv",
            "--tenant",
            &sum.tenant_id.to_string(),
        ])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut py = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(parsed.status.success(), "python: {parsed:?}");
    let rows: Vec<[String; 4]> = serde_json::from_slice(&parsed.stdout).unwrap();
    let reverts: Vec<&[String; 4]> = rows.iter().filter(|r| r[0] == "revert").collect();
    assert_eq!(reverts.len(), sum.reverted.len(), "{reverts:?}");
    for (_, action, _) in &sum.reverted {
        assert!(
            reverts
                .iter()
                .any(|r| &r[3] == action && r[1] == "watchdog"),
            "revert of {action} with its actor"
        );
    }
    for (_, action, outcome) in &sum.measured {
        let event = if outcome == "unmeasurable" {
            "evaluation_unmeasurable".to_owned()
        } else {
            "evaluation_measured".to_owned()
        };
        assert!(
            rows.iter()
                .any(|r| r[0] == event && &r[3] == action && r[1] == "watchdog"),
            "{event} of {action}"
        );
    }
    for actor in ["kernel", "executor", "watchdog"] {
        assert!(
            rows.iter().any(|r| r[1] == actor),
            "an event by the {actor}"
        );
    }
    println!(
        "audit of the 60-day simulation: {} rows, {} reverts, {} outcomes",
        rows.len(),
        reverts.len(),
        sum.measured.len()
    );
    db.cleanup().await;
}

/// Peak resident memory of a process, in kB (`VmHWM`).
fn peak_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_export_streams_in_bounded_memory_and_is_for_admins() {
    let db = TestDb::new().await;
    let tenant = uuid::Uuid::new_v4();
    let mut input: revenue_os::contract::KernelInput =
        crate::common::fixture(crate::common::DEMAND_BOUND);
    input.tenant_id = tenant.to_string();
    db.store()
        .import(&input, &crate::common::catalog())
        .await
        .unwrap();
    // One held action, then a million recorded decisions on it (as if re-decided).
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO cycles (cycle_id, tenant_id, message_id, trigger_type, trigger_source,
                                 trigger, window_start, window_end, status, executed_at,
                                 duration_ms, output)
             VALUES ('00000000-0000-0000-0000-000000000001', '{tenant}', 'm-audit', 'manual',
                     'test', '{{}}', '2026-10-27', '2026-11-25', 'completed', now(), 1,
                     '{{}}');
             INSERT INTO actions (cycle_id, tenant_id, action_id, priority, owner_subsystem,
                                  type, target_metric, action, status)
             VALUES ('00000000-0000-0000-0000-000000000001', '{tenant}', 'crm.x', 1, 'crm',
                     'config_change', 'pipeline_total', '{{}}', 'rejected');
             INSERT INTO approval_decisions (tenant_id, cycle_id, action_id, decision,
                                             decided_by, decided_at, reason)
             SELECT '{tenant}', '00000000-0000-0000-0000-000000000001', 'crm.x', 'rejected',
                    'ana', now() - make_interval(secs => g), 'row ' || g
             FROM generate_series(1, 1000000) g;"
        ))
        .await
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["audit", "--tenant", &tenant.to_string()])
        .env("DATABASE_URL", db.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = 0u64;
    let mut peak = 0;
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        lines += 1;
        if lines.is_multiple_of(50_000) {
            peak = peak.max(peak_kb(pid).unwrap_or(0));
        }
        line.clear();
    }
    assert!(child.wait().unwrap().success());
    // header + a million decisions + the cycle
    assert_eq!(lines, 1 + 1_000_000 + 1);
    println!("a million-row audit export: peak resident {peak} kB");
    assert!(peak > 0 && peak < 100 * 1024, "peak resident {peak} kB");

    // /audit.csv: an approver is refused, an admin gets the CSV.
    let admin = add(&db, "ada", "admin");
    let approver = add(&db, "ana-approver", "approver");
    let (port, _console) = start_console(&db, None).await;
    let cookie = |r: crate::common::process::Reply| {
        r.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let ana = cookie(post(port, "/login", None, &format!("token={approver}")).await);
    assert_eq!(get(port, "/audit.csv", Some(&ana)).await.status, 403);
    assert_eq!(get(port, "/audit.csv", None).await.status, 401);
    let ada = cookie(post(port, "/login", None, &format!("token={admin}")).await);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).date_naive();
    let r = get(
        port,
        &format!("/audit.csv?tenant={tenant}&since={since}"),
        Some(&ada),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("time,actor_kind,actor,tenant_id"),
        "{}",
        &r.body[..200]
    );
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
}

/// Python's csv module reads the export: every row as a dict.
const PY_ROWS: &str = r#"
import csv, json, sys
rows = list(csv.DictReader(sys.stdin, strict=True))
assert all(len(r) == 8 and None not in r for r in rows), "ragged row"
print(json.dumps(rows))
"#;

fn audit_cli(db: &TestDb, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .arg("audit")
        .args(args)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn python_rows(csv: &[u8]) -> Vec<serde_json::Value> {
    let mut py = Command::new("python3")
        .args(["-c", PY_ROWS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(csv).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(parsed.status.success(), "python: {parsed:?}");
    serde_json::from_slice(&parsed.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_appears_once_per_tenant_and_a_sign_in_with_no_tenant() {
    let db = TestDb::new().await;
    let (a, b, untouched) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    db.client()
        .await
        .execute(
            "INSERT INTO tenants (tenant_id) SELECT unnest($1::uuid[])",
            &[&vec![a, b, untouched]],
        )
        .await
        .unwrap();
    // One load of two tenants' metrics, through the loader as `revenue-os ingest` runs it.
    let mut file = String::from("tenant_id,metric_id,date,value\n");
    for t in [a, b] {
        for d in 1..=3 {
            file.push_str(&format!("{t},pipeline_total,2026-11-0{d},{}\n", 100 * d));
        }
    }
    let opts = revenue_os::app::ingest::IngestOptions {
        kind: revenue_os::ingest::Kind::Metrics,
        format: revenue_os::ingest::Format::Csv,
        source: "nightly/metrics.csv".into(),
        load_id: Some("audit-load-1".into()),
        snapshot: false,
        quarantine: false,
        trigger: false,
        limits: revenue_os::ingest::Limits::default(),
    };
    let (report, _) = revenue_os::app::ingest::load(
        db.store(),
        &crate::common::catalog(),
        std::io::Cursor::new(file.into_bytes()),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!((report.rows, report.inserted), (6, 6));

    // A sign-in through the console, as a person makes it.
    let admin = add(&db, "ada", "admin");
    let (port, _console) = start_console(&db, None).await;
    let r = post(port, "/login", None, &format!("token={admin}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Every tenant, as CSV read by Python: the load once in each tenant it loaded, the
    // sign-in once with an empty tenant.
    let rows = python_rows(&audit_cli(&db, &["--format", "csv"]));
    let loads: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["actor_kind"] == "load").collect();
    let mut tenants: Vec<String> = loads
        .iter()
        .map(|r| r["tenant_id"].as_str().unwrap().to_owned())
        .collect();
    tenants.sort();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort();
    assert_eq!(tenants, want, "{loads:?}");
    for l in &loads {
        assert_eq!(l["actor"], "nightly/metrics.csv");
        assert_eq!(l["event"], "load_metrics");
        assert_eq!(l["cycle_id"], "");
        let detail = l["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("load audit-load-1 of 2 tenant(s): 6 rows, 6 inserted, 0 updated"),
            "{detail}"
        );
    }
    let sign_ins: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["event"] == "sign_in").collect();
    assert_eq!(sign_ins.len(), 1, "{rows:?}");
    assert_eq!(sign_ins[0]["actor_kind"], "person");
    assert_eq!(sign_ins[0]["actor"], "ada");
    assert_eq!(sign_ins[0]["tenant_id"], "");
    assert_eq!(sign_ins[0]["detail"], "role admin");
    assert!(
        rows.iter().all(|r| r["tenant_id"] != untouched.to_string()),
        "nothing of the tenant the load did not touch"
    );

    // The same as JSON lines: the sign-in's tenant is null.
    let json = audit_cli(&db, &["--format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), rows.len());
    let load_tenants = lines
        .iter()
        .filter(|l| l["actor_kind"] == "load" && l["actor"] == "nightly/metrics.csv")
        .count();
    assert_eq!(load_tenants, 2);
    let sign_in = lines.iter().find(|l| l["event"] == "sign_in").unwrap();
    assert_eq!(sign_in["tenant_id"], serde_json::Value::Null);
    assert_eq!(sign_in["actor"], "ada");
    assert_eq!(sign_in["actor_kind"], "person");

    // One tenant's export: its load, no sign-in (not that tenant's).
    let one = python_rows(&audit_cli(&db, &["--tenant", &a.to_string()]));
    assert_eq!(one.iter().filter(|r| r["actor_kind"] == "load").count(), 1);
    assert!(
        one.iter()
            .all(|r| r["event"] != "sign_in" && r["tenant_id"] == a.to_string())
    );
    // --since after everything: nothing.
    let later = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    assert!(python_rows(&audit_cli(&db, &["--since", &later.to_string()])).is_empty());

    // /audit.csv for the admin lists the same sign-in and loads.
    let r = get(port, "/audit.csv", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    let page = python_rows(r.body.as_bytes());
    assert_eq!(page.iter().filter(|r| r["actor_kind"] == "load").count(), 2);
    assert_eq!(page.iter().filter(|r| r["event"] == "sign_in").count(), 1);
    db.cleanup().await;
}
