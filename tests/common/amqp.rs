//! RabbitMQ test helpers: a unique prefix per test, collectors bound to exchanges, raw trigger
//! publishing, in-process workers, and cleanup of everything the test declared.

use super::db::TestDb;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use revenue_os::broker::{self, ConfirmedPublisher, Outgoing, Topology, header};
use revenue_os::config::Settings;
use revenue_os::contract::KernelInput;
use revenue_os::contract::catalog::Catalog;
use revenue_os::store::Store;
use revenue_os::worker::Hooks;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const AMQP_URL: &str = "amqp://127.0.0.1:5672/%2f";

/// A message a collector received.
#[derive(Debug, Clone)]
pub struct Received {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub persistent: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A queue bound to an exchange, collecting everything routed to it.
#[derive(Clone)]
pub struct Collector {
    pub queue: String,
    msgs: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    pub fn snapshot(&self) -> Vec<Received> {
        self.msgs.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived (panics after `secs`).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.snapshot();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "queue {}: {} of {n} messages after {secs}s",
                    self.queue,
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub struct TestBroker {
    pub prefix: String,
    pub topology: Topology,
    pub conn: Connection,
    pub ch: Channel,
    pub publisher: ConfirmedPublisher,
    queues: Mutex<Vec<String>>,
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| AMQP_URL.to_owned())
}

/// Test settings: this broker's prefix, the test database, short intervals.
pub fn settings(prefix: &str, db: &TestDb) -> Settings {
    let mut s = Settings::load_from(&[]).unwrap();
    s.amqp.url = amqp_url();
    s.amqp.prefix = prefix.to_owned();
    s.amqp.concurrency = 4;
    s.amqp.heartbeat_secs = 10;
    s.database = db.settings.clone();
    s.worker.outbox_sweep_secs = 1;
    s.worker.shutdown_grace_secs = 10;
    s.worker.retry_max_attempts = 3;
    s.http.listen = "127.0.0.1:0".into();
    s.console.listen = "127.0.0.1:0".into();
    // Fixtures are dated (2026-10 on) while most workers here run by the system clock: the
    // worker's retention must not drop their months as the calendar moves on.
    s.retention.data_days = 0;
    s
}

impl TestBroker {
    /// A unique prefix with its topology declared.
    pub async fn new() -> TestBroker {
        let prefix = format!("t_{}", Uuid::new_v4().simple());
        let mut s = Settings::load_from(&[]).unwrap();
        s.amqp.url = amqp_url();
        let topology = Topology::new(
            &prefix,
            &Catalog::embedded().unwrap(),
            s.amqp.delivery_limit,
        );
        let conn = broker::connect(&s.amqp, &format!("{prefix}/test"))
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        topology.declare(&ch).await.unwrap();
        let publisher = ConfirmedPublisher::open(&conn).await.unwrap();
        TestBroker {
            prefix,
            topology,
            conn,
            ch,
            publisher,
            queues: Mutex::new(vec![]),
        }
    }

    /// Binds a fresh queue to `exchange` with `key` and collects what arrives.
    pub async fn collect(&self, exchange: &str, key: &str) -> Collector {
        let queue = format!("{}.test.{}", self.prefix, Uuid::new_v4().simple());
        self.ch
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.queues.lock().unwrap().push(queue.clone());
        self.consume_queue(&queue)
            .await
            .bind(self, exchange, key)
            .await
    }

    /// Collects what is (or gets) in an existing queue, e.g. the dead-letter queue.
    pub async fn consume_queue(&self, queue: &str) -> Collector {
        let ch = self.conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let msgs = Arc::new(Mutex::new(vec![]));
        let sink = msgs.clone();
        tokio::spawn(async move {
            let _ch = ch;
            while let Some(Ok(d)) = consumer.next().await {
                let headers = d
                    .properties
                    .headers()
                    .as_ref()
                    .map(|h| {
                        h.inner()
                            .keys()
                            .filter_map(|k| {
                                header(&d.properties, k.as_str()).map(|v| (k.to_string(), v))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                sink.lock().unwrap().push(Received {
                    exchange: d.exchange.to_string(),
                    routing_key: d.routing_key.to_string(),
                    message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
                    headers,
                    body: d.data.clone(),
                    persistent: *d.properties.delivery_mode() == Some(2),
                });
            }
        });
        Collector {
            queue: queue.to_owned(),
            msgs,
        }
    }

    /// Collectors on every action exchange (`#`), keyed by exchange name.
    pub async fn collect_actions(&self) -> BTreeMap<String, Collector> {
        let mut out = BTreeMap::new();
        for ex in self.topology.actions.values() {
            out.insert(ex.clone(), self.collect(ex, "#").await);
        }
        out
    }

    /// Publishes a raw body to the triggers exchange.
    pub async fn publish_raw(&self, body: &[u8], message_id: Option<&str>) {
        let exchange = self.topology.triggers_exchange.clone();
        self.publish_raw_to(&exchange, body, message_id, Some("application/json"))
            .await;
    }

    /// Publishes a raw body to `exchange` with this content type (none when `None`).
    pub async fn publish_raw_to(
        &self,
        exchange: &str,
        body: &[u8],
        message_id: Option<&str>,
        content_type: Option<&str>,
    ) {
        let mut p = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(t) = content_type {
            p = p.with_content_type(t.into());
        }
        if let Some(m) = message_id {
            p = p.with_message_id(m.into());
        }
        self.ch
            .basic_publish(
                exchange.into(),
                "manual.test".into(),
                Default::default(),
                body,
                p,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Publishes a trigger for `tenant` (confirmed, mandatory).
    pub async fn trigger(&self, tenant: Uuid, window: Option<(&str, &str)>, message_id: &str) {
        let body = trigger_body(tenant, window);
        self.publisher
            .publish(&Outgoing {
                exchange: self.topology.triggers_exchange.clone(),
                routing_key: format!("manual.{tenant}"),
                message_id: message_id.to_owned(),
                body: serde_json::to_vec(&body).unwrap(),
                mandatory: true,
                persistent: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// One trigger per tenant per round, with message id `m-{round}-{tenant}`; returns the ids.
    pub async fn trigger_rounds(
        &self,
        tenants: &[Uuid],
        rounds: std::ops::Range<usize>,
    ) -> Vec<String> {
        let mut ids = vec![];
        for round in rounds {
            for t in tenants {
                let id = format!("m-{round}-{t}");
                self.trigger(*t, Some(WINDOW), &id).await;
                ids.push(id);
            }
        }
        ids
    }

    /// Messages waiting in `queue` (a passive declare: the queue must exist).
    pub async fn depth(&self, queue: &str) -> u32 {
        queue_depth(&self.ch, queue).await
    }

    /// Deletes every queue and exchange this test declared.
    pub async fn cleanup(self) {
        let queues: Vec<String> = self.queues.lock().unwrap().drain(..).collect();
        delete_all(&self.ch, &self.topology, &queues).await;
        let _ = self.conn.close(200, "test done".into()).await;
    }
}

async fn delete_all(ch: &Channel, topology: &Topology, queues: &[String]) {
    for q in queues {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = topology.delete(ch).await;
}

/// A failed test still removes its queues and exchanges (on a helper thread, since Drop may
/// run inside a runtime).
impl Drop for TestBroker {
    fn drop(&mut self) {
        let queues: Vec<String> = self.queues.lock().unwrap().drain(..).collect();
        if queues.is_empty() && !std::thread::panicking() {
            return;
        }
        let topology = self.topology.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let mut s = Settings::load_from(&[]).unwrap();
                s.amqp.url = amqp_url();
                if let Ok(conn) = broker::connect(&s.amqp, "test-cleanup").await
                    && let Ok(ch) = conn.create_channel().await
                {
                    delete_all(&ch, &topology, &queues).await;
                    let _ = conn.close(200, "cleanup".into()).await;
                }
            });
        })
        .join();
    }
}

impl Collector {
    async fn bind(self, b: &TestBroker, exchange: &str, key: &str) -> Collector {
        b.ch.queue_bind(
            self.queue.as_str().into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        self
    }
}

/// The example tenant's window: the fixture's data lives there, whatever today is.
pub const WINDOW: (&str, &str) = ("2026-10-27", "2026-11-25");

pub fn trigger_body(tenant: Uuid, window: Option<(&str, &str)>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "tenant_id": tenant.to_string(),
        "trigger": {
            "type": "manual",
            "source": "test",
            "triggered_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    });
    if let Some((s, e)) = window {
        v["analysis_window"] = serde_json::json!({"start_date": s, "end_date": e});
    }
    v
}

/// Imports the example tenant under a new tenant id.
pub async fn import_tenant(db: &TestDb) -> Uuid {
    let id = Uuid::new_v4();
    import_tenant_as(db, id).await;
    id
}

/// Imports the example tenant under `id`.
pub async fn import_tenant_as(db: &TestDb, id: Uuid) {
    let mut input: KernelInput = super::fixture(super::DEMAND_BOUND);
    input.tenant_id = id.to_string();
    db.store()
        .import(&input, &Catalog::embedded().unwrap())
        .await
        .unwrap();
}

/// Imports the example tenant `n` times, each under a new id.
pub async fn import_tenants(db: &TestDb, n: usize) -> Vec<Uuid> {
    let mut tenants = vec![];
    for _ in 0..n {
        tenants.push(import_tenant(db).await);
    }
    tenants
}

/// How many messages these collectors received between them so far.
pub fn received_total(collectors: &BTreeMap<String, Collector>) -> usize {
    collectors.values().map(|c| c.snapshot().len()).sum()
}

/// Waits until these collectors received at least `n` messages between them.
pub async fn wait_for_total(
    collectors: &BTreeMap<String, Collector>,
    n: usize,
    secs: u64,
    what: &str,
) {
    eventually(secs, what, move || async move {
        (received_total(collectors) >= n).then_some(())
    })
    .await;
}

/// Waits until every outbox row is published. On timeout it says, per exchange, what is
/// still pending and the last error, so a failure in CI names the exchange that stalled.
pub async fn wait_outbox_drained(db: &TestDb, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let pending = "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL";
    while db.count(pending).await > 0 {
        if tokio::time::Instant::now() > deadline {
            let rows = db
                .client()
                .await
                .query(
                    "SELECT exchange, count(*), max(attempts), max(last_error)
                     FROM outbox_messages WHERE published_at IS NULL GROUP BY exchange",
                    &[],
                )
                .await
                .unwrap();
            let left: Vec<String> = rows
                .iter()
                .map(|r| {
                    let (exchange, n, attempts, error): (
                        Option<String>,
                        i64,
                        Option<i32>,
                        Option<String>,
                    ) = (r.get(0), r.get(1), r.get(2), r.get(3));
                    format!("{exchange:?}: {n} rows, up to {attempts:?} attempts, {error:?}")
                })
                .collect();
            panic!("outbox not drained after {secs}s: {}", left.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each of these trigger message ids made exactly one cycle.
pub async fn assert_one_cycle_each(db: &TestDb, message_ids: &[String]) {
    let client = db.client().await;
    for id in message_ids {
        let n: i64 = client
            .query_one("SELECT count(*) FROM cycles WHERE message_id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{id}");
    }
}

/// A worker running in this process.
pub struct RunningWorker {
    pub name: String,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    pub fn start(settings: Settings, db: &TestDb, hooks: Hooks) -> RunningWorker {
        Self::start_with(settings, db.store().clone(), hooks)
    }

    pub fn start_with(settings: Settings, store: Store, hooks: Hooks) -> RunningWorker {
        let w = revenue_os::app::worker(&settings, store, Catalog::embedded().unwrap())
            .with_hooks(hooks);
        let name = w.connection_name().to_owned();
        let token = CancellationToken::new();
        let t = token.clone();
        let handle = tokio::spawn(async move {
            w.run(t).await.unwrap();
        });
        RunningWorker {
            name,
            token,
            handle,
        }
    }

    /// Graceful shutdown; waits for it.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("worker stops within 30s")
            .unwrap();
    }
}

/// Closes this process's broker connections whose name contains `needle`, like an operator
/// would with `rabbitmqctl close_connection` (only ours, so parallel tests are untouched).
pub async fn close_connections(needle: &str) -> usize {
    let needle = needle.to_owned();
    tokio::task::spawn_blocking(move || close_connections_now(&needle))
        .await
        .unwrap()
}

fn close_connections_now(needle: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = 0;
    for line in text.lines().filter(|l| l.contains(needle)) {
        let Some(pid) = line.split('\t').next() else {
            continue;
        };
        let st = std::process::Command::new("rabbitmqctl")
            .args(["-q", "close_connection", pid.trim(), "test"])
            .status()
            .expect("rabbitmqctl close_connection");
        if st.success() {
            n += 1;
        }
    }
    n
}

/// Polls `f` until it returns Some (panics after `secs`).
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages waiting in `queue` on `ch`'s broker (a passive declare: the queue must exist).
pub async fn queue_depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}
