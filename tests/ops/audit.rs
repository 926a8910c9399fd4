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
