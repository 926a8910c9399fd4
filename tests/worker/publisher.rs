//! The confirm-mode publishing channel failing on its own, while the connection and the
//! consumer stay up: the worker must notice and rebuild its session, or, for a channel whose
//! publishes keep being nacked, open a new publishing channel.

use crate::common::amqp::{
    RunningWorker, TestBroker, WINDOW, eventually, import_tenants, settings, wait_for_total,
    wait_outbox_drained,
};
use crate::common::db::TestDb;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use revenue_os::contract::Subsystem;
use revenue_os::worker::Hooks;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_deleted_exchange_does_not_stop_publishing() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 3).await;
    let actions = b.collect_actions().await;
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let w = RunningWorker::start(settings(&b.prefix, &db), &db, Hooks::default());

    // A first cycle shows the session is up (and the topology declared).
    b.trigger(tenants[0], Some(WINDOW), "m-warmup").await;
    events.wait_for(1, 30).await;
    let per_cycle = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, per_cycle, 30, "the first cycle's actions").await;

    // The example tenant has a crm action: publishing it now gets a channel-level 404.
    let crm = b.topology.action_exchange(Subsystem::Crm);
    b.ch.exchange_delete(crm.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    b.trigger(tenants[1], Some(WINDOW), "m-404").await;
    eventually(30, "the crm row failed", || async {
        (db.count(
            "SELECT count(*) FROM outbox_messages o JOIN cycles c USING (cycle_id)
             WHERE c.message_id = 'm-404' AND o.exchange LIKE '%.crm' AND o.attempts >= 1",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    // The operator restores the exchange and its binding.
    b.ch.exchange_declare(
        crm.as_str().into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    bind_all(&b, &actions[&crm].queue, &crm).await;
    wait_for_total(&actions, 2 * per_cycle, 60, "the second cycle's actions").await;
    events.wait_for(2, 30).await;

    // And later cycles are published as usual.
    b.trigger(tenants[2], Some(WINDOW), "m-later").await;
    wait_for_total(&actions, 3 * per_cycle, 30, "the third cycle's actions").await;
    events.wait_for(3, 30).await;
    wait_outbox_drained(&db, 20).await;
    // Messages in flight when the channel closed may come twice (executors dedupe on
    // message_id); none is missing.
    let ids: std::collections::HashSet<String> = actions
        .values()
        .flat_map(|c| c.snapshot())
        .filter_map(|m| m.message_id)
        .collect();
    assert_eq!(ids.len(), 3 * per_cycle);
    assert_eq!(
        db.count(
            "SELECT count(DISTINCT message_id) FROM outbox_messages WHERE action_id IS NOT NULL"
        )
        .await,
        ids.len() as i64
    );

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// Rows a previous process left pending are swept as soon as the new worker's session is up,
/// not one or two (here very long) sweep intervals later.
#[tokio::test]
async fn start_up_sweep_waits_for_the_session_then_publishes_leftovers() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenant = import_tenants(&db, 1).await[0];
    let events = b.collect(&b.topology.cycles_exchange, "#").await;
    let mut s = settings(&b.prefix, &db);

    // No queue on the action exchanges yet: every action is returned and stays pending.
    let w = RunningWorker::start(s.clone(), &db, Hooks::default());
    b.trigger(tenant, Some(WINDOW), "m-leftover").await;
    events.wait_for(1, 30).await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    w.stop().await;
    let pending =
        "SELECT count(*) FROM outbox_messages WHERE action_id IS NOT NULL AND published_at IS NULL";
    assert_eq!(db.count(pending).await as usize, n);

    let actions = b.collect_actions().await;
    s.worker.outbox_sweep_secs = 3600;
    let w = RunningWorker::start(s, &db, Hooks::default());
    wait_for_total(&actions, n, 30, "the leftover actions").await;
    eventually(10, "leftovers marked published", || async {
        (db.count(pending).await == 0).then_some(())
    })
    .await;

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}

/// Binds `queue` to everything `exchange` routes.
async fn bind_all(b: &TestBroker, queue: &str, exchange: &str) {
    b.ch.queue_bind(
        queue.into(),
        exchange.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// The worker's connection (its broker-side pid) and the numbers of its open channels.
fn worker_channels(name: &str) -> Option<(String, BTreeSet<u32>)> {
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["-q"])
            .args(args)
            .output()
            .expect("rabbitmqctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let conns = ctl(&[
        "list_connections",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let pid = conns
        .lines()
        .find(|l| l.contains(name))?
        .split('\t')
        .next()?
        .trim()
        .to_owned();
    let channels = ctl(&[
        "list_channels",
        "--no-table-headers",
        "connection",
        "number",
    ])
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .filter(|(c, _)| c.trim() == pid)
    .filter_map(|(_, n)| n.trim().parse().ok())
    .collect();
    Some((pid, channels))
}

/// A queue that nacks every publish (full, `reject-publish`) bound to the crm exchange: the
/// worker publishes on a new channel once the nacks have lasted, keeping its connection and
/// consumers, and the crm rows go out once the queue stops refusing them. RabbitMQ 3.10 leaves
/// a channel stuck this way on a quorum queue whose leader died (docs/high-availability.md);
/// a full queue is how a test makes a broker nack on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_nacked_for_a_while_go_out_on_a_new_channel_of_the_same_session() {
    let db = TestDb::new().await;
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 2).await;
    let actions = b.collect_actions().await;
    let crm = b.topology.action_exchange(Subsystem::Crm);
    let refusing = format!("{}.refusing", b.prefix);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    b.ch.queue_declare(
        refusing.as_str().into(),
        QueueDeclareOptions::default(),
        args,
    )
    .await
    .unwrap();
    bind_all(&b, &refusing, &crm).await;
    let mut s = settings(&b.prefix, &db);
    s.amqp.renew_channel_after_nacks_secs = 1;
    let w = RunningWorker::start(s, &db, Hooks::default());
    let name = w.name.clone();

    b.trigger(tenants[0], Some(WINDOW), "m-nacked").await;
    let crm_nacked = "SELECT count(*) FROM outbox_messages
                      WHERE exchange LIKE '%.crm' AND published_at IS NULL AND attempts >= 1";
    eventually(30, "the crm row nacked", || async {
        (db.count(crm_nacked).await >= 1).then_some(())
    })
    .await;
    let (pid, before) = tokio::task::spawn_blocking({
        let name = name.clone();
        move || worker_channels(&name)
    })
    .await
    .unwrap()
    .expect("the worker's connection");
    let renewed = eventually(60, "a new publishing channel", || {
        let name = name.clone();
        let (pid, before) = (pid.clone(), before.clone());
        async move {
            let (now_pid, now) = tokio::task::spawn_blocking(move || worker_channels(&name))
                .await
                .unwrap()?;
            assert_eq!(now_pid, pid, "the same connection: no new session");
            now.difference(&before).next().copied()
        }
    })
    .await;
    assert!(!before.contains(&renewed));
    // Everything else was published meanwhile.
    let pending = "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL";
    assert_eq!(
        db.count(pending).await,
        db.count(crm_nacked).await,
        "only the crm rows wait"
    );

    // The queue stops refusing: the crm rows go out, on the session the worker still has.
    b.ch.queue_delete(refusing.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    wait_outbox_drained(&db, 60).await;
    b.trigger(tenants[1], Some(WINDOW), "m-after").await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    eventually(30, "the second cycle's actions", || async {
        let now = db.count("SELECT count(*) FROM actions").await as usize;
        (now > n).then_some(())
    })
    .await;
    wait_outbox_drained(&db, 30).await;
    let total = db.count("SELECT count(*) FROM actions").await as usize;
    wait_for_total(&actions, total, 30, "every action, crm included").await;
    let ids: std::collections::HashSet<String> = actions
        .values()
        .flat_map(|c| c.snapshot())
        .filter_map(|m| m.message_id)
        .collect();
    assert_eq!(
        ids.len(),
        total,
        "each action arrived (a resend keeps its id)"
    );
    let (end_pid, _) = tokio::task::spawn_blocking(move || worker_channels(&name))
        .await
        .unwrap()
        .expect("the worker's connection");
    assert_eq!(end_pid, pid, "one session throughout");

    w.stop().await;
    b.cleanup().await;
    db.cleanup().await;
}
