//! A worker process behind relays, its log lines, and the checker.

use crate::common::amqp::{TestBroker, amqp_url, eventually};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, free_port, get, worker_command};
use crate::relay::Relay;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PG: &str = "127.0.0.1:5432";
pub const MQ: &str = "127.0.0.1:5672";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A `revenue-os worker` child, its database and broker links optionally through relays.
pub struct Worker {
    pub port: u16,
    child: KillOnDrop,
    logs: Arc<Mutex<Vec<String>>>,
    pub label: String,
}

pub struct Links<'a> {
    pub pg: Option<&'a Relay>,
    pub mq: Option<&'a Relay>,
}

impl Worker {
    /// Spawns a worker on this test's prefix and database; `env` adds or overrides settings.
    pub fn spawn(
        label: &str,
        b: &TestBroker,
        db: &TestDb,
        links: Links<'_>,
        env: &[(&str, &str)],
    ) -> Worker {
        Self::spawn_on(label, &b.prefix, db, links, env)
    }

    /// `spawn` on a prefix without a `TestBroker` (a test's own broker cluster).
    pub fn spawn_on(
        label: &str,
        prefix: &str,
        db: &TestDb,
        links: Links<'_>,
        env: &[(&str, &str)],
    ) -> Worker {
        let port = free_port();
        let mut c = worker_command(prefix, db, port);
        if let Some(r) = links.pg {
            c.env("DATABASE_URL", r.url_for(db.url()));
        }
        if let Some(r) = links.mq {
            c.env("AMQP_URL", r.url_for(&amqp_url()));
        }
        c.env("REVENUE_OS__DATABASE__MIGRATE_ON_START", "false")
            .env("REVENUE_OS__DATABASE__CALL_TIMEOUT_SECS", "5")
            .env("REVENUE_OS__DATABASE__CONNECT_TIMEOUT_SECS", "2")
            .env("REVENUE_OS__AMQP__CONNECT_TIMEOUT_SECS", "3")
            .env("REVENUE_OS__AMQP__HEARTBEAT_SECS", "5")
            .env("REVENUE_OS__AMQP__CONCURRENCY", "4")
            .env("REVENUE_OS__WATCHDOG__INTERVAL_SECS", "0");
        for (k, v) in env {
            c.env(k, v);
        }
        c.stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn worker");
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let sink = logs.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Worker {
            port,
            child: KillOnDrop(Some(child)),
            logs,
            label: label.to_owned(),
        }
    }

    pub async fn ready(&self, secs: u64) {
        let port = self.port;
        eventually(secs, "worker ready", || async move {
            matches!(get(port, "/readyz").await, Some((200, _))).then_some(())
        })
        .await;
    }

    /// `/readyz` and `/healthz` status codes; `None` if the endpoint did not answer in 1 s.
    pub async fn probe(&self, path: &str) -> Option<u16> {
        let port = self.port;
        let path = path.to_owned();
        tokio::time::timeout(
            Duration::from_secs(1),
            async move { get(port, &path).await },
        )
        .await
        .ok()
        .flatten()
        .map(|(code, _)| code)
    }

    /// The body of an ops endpoint's answer; `None` if it did not answer in 1 s.
    #[allow(dead_code)] // the cluster tests' (`/readyz` naming the primary)
    pub async fn probe_body(&self, path: &str) -> Option<String> {
        let port = self.port;
        let path = path.to_owned();
        tokio::time::timeout(
            Duration::from_secs(1),
            async move { get(port, &path).await },
        )
        .await
        .ok()
        .flatten()
        .map(|(_, body)| body)
    }

    pub fn lines(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// WARN and ERROR lines.
    pub fn complaints(&self) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains("ERROR"))
            .count()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.0.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no drain, no flush, whatever was in flight is left to the others.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(mut self) {
        if let Some(c) = self.child.0.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let mut c = c;
            for _ in 0..400 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---", self.label);
            for l in self.lines() {
                eprintln!("{l}");
            }
        }
    }
}

/// What the checker counts once the dust settles.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub triggers: usize,
    pub actions: usize,
    /// Triggers with no cycle.
    pub lost: usize,
    /// Triggers with more than one cycle, or actions delivered under two message ids.
    pub doubled: usize,
    /// Outbox rows never published.
    pub unpublished: usize,
    /// Stored actions no executor queue received.
    pub never_delivered: usize,
    /// Trigger deliveries in the dead-letter queue.
    pub dead_lettered: usize,
    /// Same message id delivered again (at-least-once; executors dedupe on it).
    pub redelivered: usize,
}

impl Tally {
    pub fn clean(&self) -> bool {
        self.lost + self.doubled + self.unpublished + self.never_delivered + self.dead_lettered == 0
    }
}

/// Counts against the database and the collected deliveries.
pub async fn tally(
    db: &TestDb,
    message_ids: &[String],
    delivered: &[String],
    dead_lettered: usize,
) -> Tally {
    let client = db.client().await;
    let mut t = Tally {
        triggers: message_ids.len(),
        dead_lettered,
        ..Tally::default()
    };
    for id in message_ids {
        let n: i64 = client
            .query_one("SELECT count(*) FROM cycles WHERE message_id = $1", &[id])
            .await
            .expect("count cycles")
            .get(0);
        match n {
            0 => t.lost += 1,
            1 => {}
            _ => t.doubled += 1,
        }
    }
    let actions: Vec<String> = client
        .query(
            "SELECT o.message_id FROM outbox_messages o WHERE o.action_id IS NOT NULL",
            &[],
        )
        .await
        .expect("actions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    t.actions = actions.len();
    t.unpublished = client
        .query_one(
            "SELECT count(*) FROM outbox_messages WHERE published_at IS NULL",
            &[],
        )
        .await
        .expect("unpublished")
        .get::<_, i64>(0) as usize;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for m in delivered {
        *seen.entry(m.as_str()).or_default() += 1;
    }
    t.redelivered = seen.values().map(|n| n - 1).sum();
    t.never_delivered = actions
        .iter()
        .filter(|m| !seen.contains_key(m.as_str()))
        .count();
    // Every delivered id must be a stored action's: anything else is a second copy of one.
    let known: std::collections::BTreeSet<&str> = actions.iter().map(|s| s.as_str()).collect();
    t.doubled += seen.keys().filter(|m| !known.contains(*m)).count();
    t
}

/// Writes this scenario's row of the summary table.
pub fn record(scenario: &str, fault: &str, t: &Tally, note: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos");
    let _ = std::fs::create_dir_all(&dir);
    let row = format!(
        "| {scenario} | {fault} | {} | {} | {} | {} | {} | {} | {} | {} | {note} |\n",
        t.triggers,
        t.actions,
        t.lost,
        t.doubled,
        t.unpublished,
        t.never_delivered,
        t.dead_lettered,
        t.redelivered
    );
    let _ = std::fs::write(dir.join(format!("{scenario}.md")), &row);
    eprintln!("chaos | {row}");
}

/// Message ids of everything the collectors received.
pub fn delivered_ids(actions: &BTreeMap<String, crate::common::amqp::Collector>) -> Vec<String> {
    actions
        .values()
        .flat_map(|c| c.snapshot())
        .filter_map(|m| m.message_id.clone())
        .collect()
}

/// Waits until every trigger has its cycle, every stored action reached an executor queue and
/// the outbox is empty: the state the checker then counts.
pub async fn settle(
    db: &TestDb,
    actions: &BTreeMap<String, crate::common::amqp::Collector>,
    triggers: usize,
    secs: u64,
) {
    let total = triggers as i64;
    eventually(secs, "a cycle per trigger", || async {
        (db.count("SELECT count(*) FROM cycles").await >= total).then_some(())
    })
    .await;
    let n = db.count("SELECT count(*) FROM actions").await as usize;
    crate::common::amqp::wait_for_total(actions, n, secs, "every action delivered").await;
    crate::common::amqp::wait_outbox_drained(db, secs).await;
}

/// `settle`, then the triggers queue drained (every delivery, each copy of a trigger
/// included, was settled), then the tally.
pub async fn settle_and_tally(
    db: &TestDb,
    b: &TestBroker,
    actions: &BTreeMap<String, crate::common::amqp::Collector>,
    ids: &[String],
    secs: u64,
) -> Tally {
    settle(db, actions, ids.len(), secs).await;
    eventually(30, "the triggers queue drained", || async {
        (queue_depth(b, &b.topology.triggers_queue).await == 0).then_some(())
    })
    .await;
    let dead = queue_depth(b, &b.topology.dead_queue).await;
    tally(db, ids, &delivered_ids(actions), dead).await
}

/// Messages waiting in a queue (passive declare: the queue must exist).
pub async fn queue_depth(b: &TestBroker, queue: &str) -> usize {
    b.depth(queue).await as usize
}

/// The seconds a fault lasts: `CHAOS_<NAME>_SECS`, else the default the issue names.
pub fn fault_secs(name: &str, default: u64) -> u64 {
    std::env::var(format!("CHAOS_{name}_SECS"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
