//! `revenue-os bench --morning` at a small N: the report's shape, and that the morning lost
//! nothing. No timing is asserted: speed is the benchmark's to report, not a test's to judge.

use crate::common::amqp::amqp_url;
use crate::common::db::{admin_url, url_for};
use serde_json::Value;
use std::process::Command;

fn number(v: &Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {at}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_morning_reports_every_phase_and_loses_nothing() {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let prefix = format!("t_{}", uuid::Uuid::new_v4().simple());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_revenue-os"))
            .args(["bench", "--morning", "--tenants", "200", "--days", "30"])
            .args([
                "--actions-per-tenant",
                "5",
                "--rate",
                "50",
                "--paced-seconds",
                "2",
            ])
            .args(["--pgbench-clients", "2", "--pgbench-seconds", "2"])
            .env("DATABASE_URL", url_for(&name))
            .env("AMQP_URL", amqp_url())
            .env("REVENUE_OS__AMQP__PREFIX", &prefix)
            .env("REVENUE_OS__AMQP__CONCURRENCY", "4")
            .env("RUST_LOG", "warn")
            .output()
            .map(|o| (o, name))
    })
    .await
    .unwrap()
    .unwrap();
    let (out, name) = out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The bench's own database goes, whatever the outcome.
    let admin = admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {name}_morning WITH (FORCE)"
        ))
        .await
        .unwrap();
    assert!(out.status.success(), "bench --morning failed: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(r["tenants"], 200);
    assert_eq!(r["days"], 30);
    for phase in ["load", "watch", "detect", "decide"] {
        for field in ["from_s", "to_s", "seconds", "count", "per_second"] {
            assert!(
                number(&r, &format!("phases.{phase}.{field}")) >= 0.0,
                "{phase}.{field}"
            );
        }
    }
    let kinds: Vec<&str> = r["phases"]["load_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["revenue_events", "campaigns", "opportunities", "metrics"]
    );
    // 200 tenants × 9 metrics of the example tenant, yesterday.
    assert_eq!(r["phases"]["load_files"][3]["rows"], 1800);
    assert!(number(&r, "end_to_end_seconds") > 0.0);
    assert!(number(&r, "seed_rows") > 50_000.0);

    // Nothing lost: one cycle per tenant, every watched action evaluated, every action
    // confirmed, the outbox empty.
    for (what, n) in r["lost"].as_object().unwrap() {
        assert_eq!(n, 0, "lost.{what}: {r:#}");
    }
    assert_eq!(r["cycles"], 200);
    assert_eq!(r["phases"]["decide"]["count"], 200);
    assert_eq!(r["phases"]["watch"]["count"], 1000);
    assert!(number(&r, "actions_published") >= 200.0);

    // Every paced trigger was decided and timed: zeros here once hid a phase that measured
    // nothing (its skipped cycles were not counted).
    assert_eq!(r["paced"]["triggers"], 100);
    assert_eq!(r["paced"]["cycles_completed"], 100);
    for p in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
        assert!(number(&r, &format!("paced.latency.{p}")) > 0.0, "{p}");
    }
    assert!(number(&r, "ceiling.copy_rows_per_second") > 0.0);
    let pg = &r["ceiling"]["pgbench_cycles_per_second"];
    assert!(pg.is_null() || pg.as_f64().is_some_and(|c| c > 0.0), "{pg}");
    // The CPU a decided cycle and a pgbench transaction cost, by process, read from /proc.
    if cfg!(target_os = "linux") {
        for part in [
            "machine_ms",
            "postgres_ms",
            "rabbitmq_ms",
            "workers_ms",
            "other_ms",
        ] {
            let ms = number(&r, &format!("decide_cpu_ms_per_cycle.{part}"));
            assert!(ms >= 0.0, "{part}: {r:#}");
        }
        assert!(
            number(&r, "decide_cpu_ms_per_cycle.machine_ms") > 0.0,
            "{r:#}"
        );
        if !pg.is_null() {
            let ms = number(&r, "ceiling.pgbench_cpu_ms_per_transaction.postgres_ms");
            assert!(ms > 0.0, "{r:#}");
            assert!(number(&r, "ceiling.postgres_cpu_ratio") > 0.0, "{r:#}");
        }
    }
    assert_eq!(r["worker_peak_rss_mib"].as_array().unwrap().len(), 1);
    // Where memory grew, and the reports backlog the paced phase competed with.
    for phase in ["first_cycle", "last_confirmed", "end"] {
        let at = &r["worker_peak_rss_mib_by_phase"][phase];
        assert_eq!(at.as_array().map(Vec::len), Some(1), "{phase}: {r:#}");
    }
    assert!(number(&r, "paced_reports_backlog") >= 0.0);
    assert!(number(&r, "paced_reports_backlog_after") >= 0.0);
    for table in ["metric_snapshots", "cycles", "actions"] {
        assert!(
            number(&r, &format!("table_bytes_after.{table}")) > 0.0,
            "{table}"
        );
    }
    // The run says what server it measured.
    for setting in [
        "autovacuum",
        "shared_buffers",
        "max_wal_size",
        "synchronous_commit",
    ] {
        assert!(r["server"][setting].is_string(), "server.{setting}: {r:#}");
    }
    // And how fast the machine was at each end of it.
    for end in ["before", "after"] {
        let probe = number(&r, &format!("machine.kernel_decides_per_second_{end}"));
        assert!(probe > 0.0, "machine {end}: {r:#}");
    }
}
