//! Deviation detection through the loader, on the real services: 200 tenants created by an
//! `ingest --kind tenants` file, then one `ingest --kind metrics --trigger` file of 60
//! synthetic days each (the calibration's generator), 20 of them with a 40% drop in
//! pipeline_total on the newest day. The worker's load follow-up detects, and each dropped
//! tenant's cycle is a deviation cycle whose diagnosis names the metric and the deviation's
//! size; at most a handful of the others get one, and the rest get the load's scheduled
//! cycle. A second load of the same day raises nothing new. `revenue-os deviations --json`
//! prints each detection's numbers.

use crate::common::amqp::{RunningWorker, TestBroker, eventually, settings};
use crate::common::db::TestDb;
use crate::common::{DEMAND_BOUND, fixture};
use chrono::{Duration, Utc};
use revenue_os::worker::Hooks;
use revenue_os::worker::deviation::trigger_message_id;
use std::fmt::Write as _;
use uuid::Uuid;

#[path = "../deviation/synth.rs"]
#[allow(dead_code)]
pub mod synth;

const TENANTS: usize = 200;
const DROPPED: usize = 20;
/// pipeline_total in the generator's profiles.
const PIPELINE: usize = 1;

/// `revenue-os ingest` as a nightly job runs it: the summary it prints.
fn ingest(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .arg("ingest")
        .args(args)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ingest {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_with_harmful_drops_raises_deviation_cycles_naming_the_metric() {
    let b = TestBroker::new().await;
    let db = TestDb::new().await;
    let mut s = settings(&b.prefix, &db);
    s.kernel.min_cycle_interval_hours = 0;
    let dir = std::env::temp_dir().join(format!("revenue-os-deviations-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let yesterday = Utc::now().date_naive() - Duration::days(1);

    // The tenants' settings, one NDJSON line each.
    let doc = fixture(DEMAND_BOUND);
    let settings_of = serde_json::json!({
        "targets": doc.targets, "guardrails": doc.guardrails, "config": doc.config,
    });
    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| Uuid::new_v4()).collect();
    let mut ndjson = String::new();
    for t in &tenants {
        let mut line = settings_of.clone();
        line["tenant_id"] = serde_json::json!(t.to_string());
        writeln!(ndjson, "{line}").unwrap();
    }
    let path = dir.join("tenants.ndjson");
    std::fs::write(&path, ndjson).unwrap();
    let r = ingest(&db, &["--kind", "tenants", path.to_str().unwrap()]);
    assert_eq!(r["inserted"], TENANTS);

    // Their campaigns, open opportunities and revenue events, one file per kind.
    for (kind, rows) in [
        ("campaigns", serde_json::to_value(&doc.campaigns).unwrap()),
        (
            "opportunities",
            serde_json::to_value(&doc.opportunities).unwrap(),
        ),
        (
            "revenue_events",
            serde_json::to_value(&doc.revenue_events).unwrap(),
        ),
    ] {
        let mut ndjson = String::new();
        for t in &tenants {
            for row in rows.as_array().unwrap() {
                let mut line = row.clone();
                line["tenant_id"] = serde_json::json!(t.to_string());
                writeln!(ndjson, "{line}").unwrap();
            }
        }
        let path = dir.join(format!("{kind}.ndjson"));
        std::fs::write(&path, ndjson).unwrap();
        let r = ingest(&db, &["--kind", kind, path.to_str().unwrap()]);
        assert_eq!(r["rejected"], 0, "{kind}");
    }

    // 60 days of every metric, the newest yesterday; the first 20 tenants drop.
    let mut rng = synth::Rng::new(0x2026_1204);
    let mut csv = String::from("tenant_id,metric_id,date,value\n");
    let mut newest = String::from("tenant_id,metric_id,date,value\n");
    for (i, tenant) in tenants.iter().enumerate() {
        let mut t = synth::tenant(&mut rng, 60);
        if i < DROPPED {
            t.inject(PIPELINE);
        }
        let shift = yesterday - t.newest;
        for (id, series) in &t.series {
            for (d, v) in series {
                let day = *d + shift;
                writeln!(csv, "{tenant},{id},{day},{v}").unwrap();
                if day == yesterday {
                    writeln!(newest, "{tenant},{id},{day},{v}").unwrap();
                }
            }
        }
    }
    let dropped = &tenants[..DROPPED];
    let path = dir.join("metrics.csv");
    std::fs::write(&path, &csv).unwrap();

    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    let r = ingest(
        &db,
        &["--kind", "metrics", "--trigger", path.to_str().unwrap()],
    );
    assert_eq!(r["rejected"], 0);
    assert_eq!(r["tenants"], TENANTS);

    // Every tenant gets one cycle: a deviation cycle, or the load's scheduled one.
    let cycles = eventually(120, "one cycle per tenant", || async {
        let n = db.count("SELECT count(*) FROM cycles").await;
        (n >= TENANTS as i64).then_some(n)
    })
    .await;
    assert_eq!(cycles, TENANTS as i64);
    let client = db.client().await;
    for t in dropped {
        let r = client
            .query_one(
                "SELECT trigger_source, status, coalesce(diagnosis, '') FROM cycles
                 WHERE tenant_id = $1 AND trigger_type = 'metric_deviation'",
                &[t],
            )
            .await
            .unwrap();
        let (source, status, diagnosis): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(source, "deviation:pipeline_total");
        assert_eq!(status, "completed", "{diagnosis}");
        assert!(
            diagnosis.contains("deviation in pipeline_total") && diagnosis.contains('%'),
            "{diagnosis}"
        );
        if *t == dropped[0] {
            println!("diagnosis of {t}: {diagnosis}");
        }
    }
    let deviation_cycles = db
        .count("SELECT count(*) FROM cycles WHERE trigger_type = 'metric_deviation'")
        .await;
    let others = deviation_cycles - DROPPED as i64;
    println!(
        "{deviation_cycles} deviation cycles: {DROPPED} dropped tenants, {others} of {} clean",
        TENANTS - DROPPED
    );
    assert!(others <= 5, "{others} deviation cycles for clean tenants");
    assert_eq!(
        db.count("SELECT count(*) FROM cycles WHERE trigger_type = 'scheduled' AND trigger_source = 'ingest'")
            .await,
        TENANTS as i64 - deviation_cycles
    );
    let triggers = db
        .count("SELECT count(*) FROM outbox WHERE message_id LIKE 'deviation:%'")
        .await;
    assert_eq!(triggers, deviation_cycles);
    for t in dropped {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM outbox WHERE message_id = '{}'",
                trigger_message_id(*t, yesterday)
            ))
            .await,
            1
        );
    }

    // The same day loaded again (a restatement file of it): detected again, nothing raised.
    let path = dir.join("newest.csv");
    std::fs::write(&path, &newest).unwrap();
    let r = ingest(&db, &["--kind", "metrics", path.to_str().unwrap()]);
    assert_eq!(r["replayed"], false);
    let load_id = r["load_id"].as_str().unwrap().to_owned();
    eventually(60, "the second load followed up", || async {
        let done = db
            .count(&format!(
                "SELECT count(*) FROM loads WHERE load_id = '{load_id}' AND followed_up_at IS NOT NULL"
            ))
            .await;
        (done == 1).then_some(())
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'deviation:%'")
            .await,
        triggers
    );
    assert_eq!(
        db.count("SELECT count(*) FROM cycles").await,
        TENANTS as i64
    );
    w.stop().await;

    // The CLI prints each detection's numbers.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .args(["deviations", "--json", "--tenant", &dropped[0].to_string()])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = listed
        .as_array()
        .and_then(|a| a.iter().find(|d| d["metric_id"] == "pipeline_total"))
        .expect("pipeline_total listed");
    for field in [
        "observed",
        "expected",
        "band_lower",
        "band_upper",
        "k",
        "days_used",
    ] {
        assert!(first[field].is_number(), "{field}: {first}");
    }
    assert_eq!(first["method"], "mstl_ets");
    assert_eq!(first["harmful"], true);
    assert_eq!(
        first["trigger_message_id"],
        trigger_message_id(dropped[0], yesterday)
    );

    let _ = std::fs::remove_dir_all(&dir);
    b.cleanup().await;
    db.cleanup().await;
}
