//! Four workers, every trigger published twice, and faults at chosen points: backends
//! terminated, one worker's broker link reset, one worker's database link slowed, one worker
//! killed with SIGKILL after it committed cycles, then started again.

use crate::common::amqp::{TestBroker, eventually, import_tenants};
use crate::common::db::TestDb;
use crate::harness::{Links, MQ, PG, Worker, addr, record, settle_and_tally};
use crate::relay::{Mode, Relay};
use std::time::Duration;

async fn terminate_backends(db: &TestDb) -> i64 {
    let c = db.client().await;
    c.query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&db.name],
    )
    .await
    .map(|r| r.get(0))
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_with_double_publishes_and_faults_lose_and_double_nothing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 16).await;
    let actions = b.collect_actions().await;
    let pgs = [
        Relay::start(addr(PG)).await,
        Relay::start(addr(PG)).await,
        Relay::start(addr(PG)).await,
        Relay::start(addr(PG)).await,
    ];
    let mqs = [
        Relay::start(addr(MQ)).await,
        Relay::start(addr(MQ)).await,
        Relay::start(addr(MQ)).await,
        Relay::start(addr(MQ)).await,
    ];
    let spawn = |i: usize| {
        Worker::spawn(
            &format!("storm-{i}"),
            &b,
            &db,
            Links {
                pg: Some(&pgs[i]),
                mq: Some(&mqs[i]),
            },
            &[],
        )
    };
    let mut workers: Vec<Worker> = (0..4).map(spawn).collect();
    for w in &workers {
        w.ready(30).await;
    }

    // Two rounds per tenant, each message published twice.
    let mut ids = vec![];
    for round in 0..2 {
        for t in &tenants {
            let id = format!("storm-{round}-{t}");
            for _ in 0..2 {
                b.trigger(*t, Some(crate::common::amqp::WINDOW), &id).await;
            }
            ids.push(id);
        }
    }

    let mut faults = vec![];
    // Worker 0 is killed with SIGKILL once cycles are being committed, then started again.
    eventually(60, "some committed cycles", || async {
        (db.count("SELECT count(*) FROM cycles").await >= 4).then_some(())
    })
    .await;
    workers[0].kill9();
    faults.push("kill -9 of a worker after 4 commits");
    let killed = terminate_backends(&db).await;
    faults.push("pg_terminate_backend of every backend");
    mqs[1].set(Mode::Down);
    faults.push("one worker's broker link reset for 3 s");
    pgs[2].set(Mode::Slow(Duration::from_millis(40)));
    faults.push("one worker's database link slowed by 40 ms a chunk");
    pgs[3].set(Mode::Blackhole);
    faults.push("one worker's database link blackholed for 10 s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    mqs[1].set(Mode::Pass);
    terminate_backends(&db).await;
    workers[0] = spawn(0);
    tokio::time::sleep(Duration::from_secs(7)).await;
    pgs[3].set(Mode::Pass);
    pgs[2].set(Mode::Pass);

    let t = settle_and_tally(&db, &b, &actions, &ids, 120).await;
    record(
        "storm",
        "4 workers, every trigger twice, kill -9, terminated backends, reset/slow/blackholed links",
        &t,
        &format!(
            "{killed} backends terminated at the first cut; faults: {}",
            faults.len()
        ),
    );
    assert!(t.clean(), "{t:?}");
    for w in workers {
        w.stop();
    }
    b.cleanup().await;
    db.cleanup().await;
}
