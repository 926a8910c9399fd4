//! Deviation detection on the real services: 200 tenants of 60 synthetic days (the calibration's
//! generator), 20 with a 40% drop in pipeline_total on the newest day. One detection pass
//! queues one metric_deviation trigger for each of those (and at most a handful for the
//! others); a second pass of the same day queues nothing; the worker runs each trigger as a
//! deviation cycle whose diagnosis names the metric and the deviation's size; `revenue-os
//! deviations --json` prints each detection's numbers.

use crate::common::amqp::{RunningWorker, TestBroker, eventually, settings};
use crate::common::db::TestDb;
use crate::common::{DEMAND_BOUND, catalog, fixture};
use chrono::{Duration, Utc};
use revenue_os::worker::Hooks;
use revenue_os::worker::deviation::{detect_for, trigger_message_id};
use uuid::Uuid;

#[path = "../deviation/synth.rs"]
#[allow(dead_code)]
mod synth;

const TENANTS: usize = 200;
const DROPPED: usize = 20;
/// pipeline_total in the generator's profiles.
const PIPELINE: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harmful_drop_raises_one_deviation_cycle_naming_the_metric() {
    let b = TestBroker::new().await;
    let db = TestDb::new().await;
    let mut s = settings(&b.prefix, &db);
    s.kernel.min_cycle_interval_hours = 0;
    let catalog = catalog();
    let yesterday = Utc::now().date_naive() - Duration::days(1);

    let mut rng = synth::Rng::new(0x2026_1204);
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let mut t = synth::tenant(&mut rng, 60);
        if i < DROPPED {
            t.inject(PIPELINE);
        }
        let shift = yesterday - t.newest;
        let mut doc = fixture(DEMAND_BOUND);
        let tenant = Uuid::new_v4();
        doc.tenant_id = tenant.to_string();
        doc.metrics = t
            .series
            .iter()
            .flat_map(|(id, s)| {
                s.iter()
                    .map(move |(d, v)| revenue_os::contract::MetricPoint {
                        metric_id: (*id).to_owned(),
                        value: *v,
                        date: (*d + shift).format("%Y-%m-%d").to_string(),
                        dimension: None,
                    })
            })
            .collect();
        db.store().import(&doc, &catalog).await.unwrap();
        tenants.push(tenant);
    }
    let dropped = &tenants[..DROPPED];

    let pass = detect_for(
        db.store(),
        &catalog,
        &s.deviation,
        &b.topology,
        &tenants,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(pass.tenants, TENANTS);
    assert_eq!(pass.assessed, TENANTS * 9);
    let queued: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT message_id FROM outbox WHERE cycle_id IS NULL ORDER BY message_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in dropped {
        assert!(
            queued.contains(&trigger_message_id(*t, yesterday)),
            "no trigger for dropped tenant {t}: {queued:?}"
        );
    }
    let others = queued.len() - DROPPED;
    println!(
        "{} triggers: {DROPPED} dropped tenants, {others} of {} clean",
        queued.len(),
        TENANTS - DROPPED
    );
    assert!(
        others <= 5,
        "{others} triggers for clean tenants: {queued:?}"
    );
    assert_eq!(pass.triggers, queued.len());

    // The same day again: recorded again, nothing new queued.
    let again = detect_for(
        db.store(),
        &catalog,
        &s.deviation,
        &b.topology,
        &tenants,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(again.triggers, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE cycle_id IS NULL")
            .await,
        queued.len() as i64
    );

    // The worker's relay publishes them; each becomes a deviation cycle.
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    let cycles = eventually(90, "deviation cycles", || async {
        let n = db
            .count("SELECT count(*) FROM cycles WHERE trigger_type = 'metric_deviation'")
            .await;
        (n == queued.len() as i64).then_some(n)
    })
    .await;
    assert_eq!(cycles, queued.len() as i64);
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

    db.cleanup().await;
}
