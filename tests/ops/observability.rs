//! What an operator sees of a running `revenue-os worker`: every metric series non-zero after a
//! few triggers (including a redelivery, a dead letter, a reconnect and unroutable actions),
//! and log lines in both formats carrying the cycle's ids from the span, never a password.

use crate::common::amqp::{TestBroker, WINDOW, close_connections, eventually, import_tenant};
use crate::common::db::TestDb;
use crate::common::process::{free_port, get, sigterm_and_wait, worker_command};
use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use std::process::{Child, Stdio};

const AMQP_WITH_PASSWORD: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn spawn(prefix: &str, db: &TestDb, port: u16, format: &str, log: &std::path::Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    worker_command(prefix, db, port)
        .env("AMQP_URL", AMQP_WITH_PASSWORD)
        .env("REVENUE_OS__LOG__FORMAT", format)
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap()
}

/// Sum of every sample of `series` (all label sets) in a Prometheus text page.
fn total(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_show_what_the_worker_did() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = [
        import_tenant(&db).await,
        import_tenant(&db).await,
        import_tenant(&db).await,
    ];
    let dir = std::env::temp_dir().join(format!("ros-ops-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    // A delivery that was handed out and never acked comes back flagged `redelivered`.
    b.trigger(tenants[0], Some(WINDOW), "m-redelivered").await;
    {
        let ch = b.conn.create_channel().await.unwrap();
        let mut c = ch
            .basic_consume(
                b.topology.triggers_queue.as_str().into(),
                "grab".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        c.next().await.unwrap().unwrap();
        ch.close(200, "released unacked".into()).await.unwrap();
    }

    let port = free_port();
    let json_log = dir.join("json.log");
    let worker = spawn(&b.prefix, &db, port, "json", &json_log);
    eventually(30, "ready", || async {
        matches!(get(port, "/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    b.publish_raw(b"{not json", Some("m-malformed")).await;
    b.trigger(tenants[0], Some(WINDOW), "m-too-recent").await;
    eventually(30, "two cycles", || async {
        (db.count("SELECT count(*) FROM cycles").await >= 2).then_some(())
    })
    .await;

    // Cut the worker's broker connection: it reconnects by itself.
    let cut = close_connections(&format!("{}/worker/", b.prefix)).await;
    assert!(cut >= 1);
    b.trigger(tenants[1], Some(WINDOW), "m-after-reconnect")
        .await;
    eventually(30, "a cycle after the reconnect", || async {
        (db.count("SELECT count(*) FROM cycles WHERE message_id = 'm-after-reconnect'")
            .await
            == 1)
            .then_some(())
    })
    .await;

    // No executor queue is bound, so action rows stay pending (returned): a real backlog.
    let page = eventually(30, "every series non-zero", || async {
        let (code, page) = get(port, "/metrics").await?;
        assert_eq!(code, 200);
        let zero: Vec<&str> = [
            "revenue_os_cycles_total",
            "revenue_os_cycle_duration_seconds_count",
            "revenue_os_outbox_pending",
            "revenue_os_outbox_oldest_pending_age_seconds",
            "revenue_os_outbox_lag_seconds_count",
            "revenue_os_publish_failures_total",
            "revenue_os_redeliveries_total",
            "revenue_os_broker_reconnects_total",
            "revenue_os_triggers_dead_lettered_total",
            "revenue_os_db_pool_connections",
            "revenue_os_db_pool_size",
        ]
        .into_iter()
        .filter(|s| total(&page, s) <= 0.0)
        .collect();
        let stages_missing = ["assemble", "decide", "persist", "publish"]
            .into_iter()
            .any(|st| {
                !page.lines().any(|l| {
                    l.starts_with("revenue_os_cycle_stage_duration_seconds_count")
                        && l.contains(&format!("stage=\"{st}\""))
                        && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
                })
            });
        (zero.is_empty() && !stages_missing).then_some(page)
    })
    .await;
    assert!(page.contains("status=\"completed\""), "{page}");
    assert!(page.contains("status=\"skipped\""), "{page}");
    labels_are_the_listed_ones(&page);
    assert!(sigterm_and_wait(worker).await.success());

    // JSON: the "cycle recorded" line carries the span's ids.
    let text = std::fs::read_to_string(&json_log).unwrap();
    let recorded: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "cycle recorded")
        .collect();
    assert!(!recorded.is_empty(), "{text}");
    for v in &recorded {
        let span = &v["span"];
        assert_eq!(span["name"], "cycle", "{v}");
        for key in ["message_id", "tenant_id", "cycle_id"] {
            assert!(span[key].is_string(), "{key} missing in {v}");
        }
    }
    assert!(!text.contains("guest:guest"), "a password reached the logs");

    // Human: same fields, as `cycle{message_id=… tenant_id=… cycle_id=…}`.
    let human_log = dir.join("human.log");
    let port2 = free_port();
    let worker = spawn(&b.prefix, &db, port2, "human", &human_log);
    b.trigger(tenants[2], Some(WINDOW), "m-human").await;
    eventually(30, "the human-format cycle", || async {
        (db.count("SELECT count(*) FROM cycles WHERE message_id = 'm-human'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert!(sigterm_and_wait(worker).await.success());
    let text = std::fs::read_to_string(&human_log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("cycle recorded") && l.contains("m-human"))
        .unwrap_or_else(|| panic!("{text}"));
    for key in ["cycle{", "message_id=m-human", "tenant_id=", "cycle_id="] {
        assert!(line.contains(key), "{key} missing in {line}");
    }
    assert!(!text.contains("guest:guest"), "a password reached the logs");

    let _ = std::fs::remove_dir_all(&dir);
    b.cleanup().await;
    db.cleanup().await;
}

/// Every exported series carries exactly the labels `telemetry::metrics::ALL` lists for it.
fn labels_are_the_listed_ones(page: &str) {
    use revenue_os::telemetry::metrics::{ALL, Kind};
    for line in page.lines().filter(|l| l.starts_with("revenue_os_")) {
        let (series, rest) = line.split_once(['{', ' ']).unwrap();
        let metric = ALL
            .iter()
            .find(|m| {
                let suffixes: &[&str] = match m.kind {
                    Kind::Histogram => &["_bucket", "_count", "_sum"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| series == format!("{}{s}", m.name))
            })
            .unwrap_or_else(|| panic!("{series} is exported but not listed"));
        let mut got: Vec<&str> = if line.contains('{') {
            let inner = rest.split('}').next().unwrap();
            inner
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
                .filter(|k| *k != "le" && *k != "quantile")
                .collect()
        } else {
            vec![]
        };
        got.sort_unstable();
        let mut want = metric.labels.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "labels of {line}");
    }
}
