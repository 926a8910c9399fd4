//! Hostile sizes: a prefetch window of 20 MiB triggers costs the worker almost nothing.

use crate::common::amqp::{TestBroker, amqp_url, eventually};
use crate::common::db::TestDb;
use crate::harness::{Links, Worker, queue_depth};
use std::process::Command;

/// Peak resident set size of a process (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_20_mib_triggers_are_dead_lettered_too_large_under_64_mib() {
    const N: usize = 16;
    const SIZE: usize = 20 << 20;
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    // One prefetch window of them at once.
    let w = Worker::spawn(
        "memory",
        &b,
        &db,
        Links { pg: None, mq: None },
        &[("REVENUE_OS__AMQP__CONCURRENCY", "16")],
    );
    w.ready(30).await;
    let pid = w.pid().expect("worker pid");
    let before = vm_hwm_kib(pid).expect("VmHWM");

    let mut body = br#"{"tenant_id":"00000000-0000-0000-0000-000000000001","pad":""#.to_vec();
    body.resize(SIZE - 2, b'x');
    body.extend_from_slice(br#""}"#);
    for i in 0..N {
        b.publish_raw(&body, Some(&format!("huge-{i}"))).await;
    }
    drop(body);
    let dead = &b.topology.dead_queue;
    eventually(240, "every huge trigger dead-lettered", || async {
        (queue_depth(&b, dead).await >= N).then_some(())
    })
    .await;
    let peak = vm_hwm_kib(pid).expect("VmHWM");
    eprintln!("worker VmHWM: {before} KiB before, {peak} KiB after {N} triggers of 20 MiB");
    assert_eq!(
        w.count("reason=\"too_large\""),
        N,
        "each logged as too_large"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    assert_eq!(queue_depth(&b, &b.topology.triggers_queue).await, 0);

    // The broker kept them whole, and `dlq list` says why.
    let out = tokio::task::spawn_blocking({
        let (prefix, url) = (b.prefix.clone(), amqp_url());
        move || {
            Command::new(env!("CARGO_BIN_EXE_revenue-os"))
                .args(["dlq", "list", "--limit", "1"])
                .env("AMQP_URL", url)
                .env("REVENUE_OS__AMQP__PREFIX", prefix)
                .env("RUST_LOG", "error")
                .output()
                .expect("revenue-os dlq list")
        }
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dlq list: {text}");
    assert!(text.contains("too_large"), "{text}");
    assert!(
        text.contains(&SIZE.to_string()),
        "the whole body is kept: {text}"
    );
    w.stop();
    b.cleanup().await;
    db.cleanup().await;
}
