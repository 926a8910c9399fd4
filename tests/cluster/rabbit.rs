//! Three RabbitMQ nodes on private ports, one worker given all three. During a burst of 200
//! triggers: kill -9 the node the worker is connected to; once it is back, kill -9 the
//! quorum leader of `<prefix>.triggers`. Nothing lost, doubled or undelivered.

use crate::burst::{Publisher, cycles, resumed_after, wait_cycles};
use crate::common::amqp::{eventually, import_tenants};
use crate::common::db::TestDb;
use crate::common::process::{KillOnDrop, free_port};
use crate::harness::{Links, Worker, tally};
use crate::{SERIAL, TestDir, report};
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use revenue_os::broker::{self, Topology};
use revenue_os::config::{AmqpSettings, Settings};
use revenue_os::contract::catalog::Catalog;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SBIN: &str = "/usr/lib/rabbitmq/bin";
const COOKIE: &str = "REVENUEOSHATESTCOOKIE";

/// One node: its own name, ports, data, logs and cookie (`HOME`).
struct Node {
    name: String,
    port: u16,
    dir: PathBuf,
    child: KillOnDrop,
}

impl Node {
    fn new(root: &Path, id: &str, k: usize) -> Node {
        let dir = root.join(format!("rabbit{k}"));
        for sub in ["home", "data", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("node dirs");
        }
        let cookie = dir.join("home/.erlang.cookie");
        std::fs::write(&cookie, COOKIE).expect("cookie");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .expect("conf");
        std::fs::write(dir.join("env.conf"), "").expect("env file");
        std::fs::write(dir.join("plugins"), "[].\n").expect("plugins file");
        let mut node = Node {
            name: format!("ros-ha-{id}-{k}@localhost"),
            port,
            dir,
            child: KillOnDrop(None),
        };
        node.start();
        node
    }

    /// Starts (or restarts, on the same data) the node in the foreground: the child is the
    /// Erlang VM itself (`RUNNING_UNDER_SYSTEMD` makes the script exec it), so kill -9 is real.
    fn start(&mut self) {
        let dist = free_port();
        let d = &self.dir;
        let child = Command::new(format!("{SBIN}/rabbitmq-server"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", d.join("home"))
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("data"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            // One scheduler, no busy waiting: three nodes share 2 cores with everything else.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("log/stdout.log")).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start rabbitmq-server");
        self.child = KillOnDrop(Some(child));
    }

    fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    /// rabbitmqctl, killed after 100 s: a query that waits on a dead node must fail the
    /// step it belongs to, not hang the test until nextest kills it without saying where.
    fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.ctl_within(100, args)
    }

    fn ctl_within(&self, secs: u32, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["-k", "5", &secs.to_string()])
            .arg(format!("{SBIN}/rabbitmqctl"))
            .env("HOME", self.dir.join("home"))
            .env("LC_ALL", "C.UTF-8")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("rabbitmqctl")
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the node to boot (`await_startup` fails at once while the VM has not
    /// registered its name yet, so it is asked again).
    fn await_startup(&self) {
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.ctl(&["await_startup", "--timeout", "90"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < until,
                "node {} did not start: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn alive(&self) -> bool {
        self.child.0.is_some()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--formatter", "json", "-q"]);
        serde_json::from_str(self.ctl_ok(&all).trim()).expect("rabbitmqctl json")
    }
}

/// Starts three nodes side by side and joins the second and third to the first.
/// Also returns the seconds the boot and the joins took.
async fn cluster(root: &Path) -> (Vec<Node>, f64, f64) {
    let id = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .to_owned();
    let start = Instant::now();
    let nodes: Vec<Node> = (1..=3).map(|k| Node::new(root, &id, k)).collect();
    let (nodes, booted) = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            for n in &nodes {
                s.spawn(|| n.await_startup());
            }
        });
        let booted = start.elapsed().as_secs_f64();
        for n in &nodes[1..] {
            n.ctl_ok(&["stop_app"]);
            n.ctl_ok(&["join_cluster", &nodes[0].name]);
            n.ctl_ok(&["start_app"]);
        }
        (nodes, booted)
    })
    .await
    .expect("cluster start");
    let running = nodes[0].json(&["cluster_status"]);
    assert_eq!(
        running["running_nodes"].as_array().map(Vec::len),
        Some(3),
        "{running}"
    );
    let joined = start.elapsed().as_secs_f64() - booted;
    (nodes, booted, joined)
}

fn amqp_on(urls: &[String], prefix: &str) -> AmqpSettings {
    let mut s = Settings::load_from(&[]).expect("settings").amqp;
    s.url = urls.join(",");
    s.prefix = prefix.to_owned();
    s.connect_timeout_secs = 6;
    s
}

/// The node a queue's leader runs on, asked of a live node.
fn leader(nodes: &[Node], queue: &str) -> Option<String> {
    let asker = nodes.iter().find(|n| n.alive())?;
    // Asked again by the caller while a queue whose leader just died answers slowly or not.
    let out = asker.ctl_within(
        20,
        &[
            "list_queues",
            "name",
            "leader",
            "members",
            "--formatter",
            "json",
            "-q",
        ],
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    list.as_array()?
        .iter()
        .find(|q| q["name"] == queue)
        .and_then(|q| q["leader"].as_str().map(str::to_owned))
}

/// The index of the node the connection named `<prefix>/worker/…` is on (by the port it
/// connected to).
fn worker_node(nodes: &[Node], prefix: &str) -> Option<usize> {
    let asker = nodes.iter().find(|n| n.alive())?;
    let out = asker.ctl_within(
        20,
        &[
            "-q",
            "list_connections",
            "--no-table-headers",
            "port",
            "client_properties",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("{prefix}/worker/");
    let port: u16 = text
        .lines()
        .find(|l| l.contains(&needle))?
        .split('\t')
        .next()?
        .trim()
        .parse()
        .ok()?;
    nodes.iter().position(|n| n.port == port)
}

/// Durable quorum queues bound with `#` to every action exchange: they outlive the node
/// kills, and are read once the dust settles.
async fn collector_queues(amqp: &AmqpSettings, topology: &Topology) -> Vec<String> {
    let conn = broker::connect(amqp, "ha-collectors")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let mut queues = vec![];
    for (i, exchange) in topology.actions.values().enumerate() {
        let q = format!("{}.ha.collect.{i}", topology.prefix);
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args.clone(),
        )
        .await
        .expect("collector queue");
        ch.queue_bind(
            q.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        queues.push(q);
    }
    let _ = conn.close(200, "declared".into()).await;
    queues
}

/// Every message id in the collector queues (taken with basic.get until they are empty).
/// Says on stderr how far the test got: nextest shows it when it kills a hung test.
fn step(started: Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
}

async fn drain(amqp: &AmqpSettings, queues: &[String]) -> Vec<String> {
    let conn = broker::connect(amqp, "ha-drain").await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let mut ids = vec![];
    for q in queues {
        // A get that waits on a queue electing its leader is asked again by the caller's loop.
        while let Ok(got) = tokio::time::timeout(
            Duration::from_secs(10),
            ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }),
        )
        .await
            && let Some(m) = got.expect("basic.get")
        {
            ids.extend(
                m.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string()),
            );
        }
    }
    let _ = conn.close(200, "drained".into()).await;
    ids
}

async fn depth(amqp: &AmqpSettings, queue: &str) -> u32 {
    let conn = broker::connect(amqp, "ha-depth").await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let n = tokio::time::timeout(
        Duration::from_secs(30),
        crate::common::amqp::queue_depth(&ch, queue),
    )
    .await
    .expect("queue depth within 30 s");
    let _ = conn.close(200, "done".into()).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_workers_node_then_the_quorum_leader_loses_and_doubles_nothing() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let dir = TestDir::new("rabbit");
    let (mut nodes, booted, joined) = cluster(&dir.0).await;
    step(started, "cluster formed");
    let formed = started.elapsed().as_secs_f64();
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    let prefix = format!("t_{}", uuid::Uuid::new_v4().simple());
    let catalog = Catalog::embedded().expect("catalog");
    let amqp = amqp_on(&urls, &prefix);
    let topology = Topology::from_settings(&amqp, &catalog);

    // Declared through the first node: the queues' leaders start there (client-local).
    let first = amqp_on(&urls[..1], &prefix);
    let conn = broker::connect(&first, "ha-setup").await.expect("connect");
    topology.declare_on(&conn).await.expect("declare");
    let _ = conn.close(200, "declared".into()).await;
    let collectors = collector_queues(&first, &topology).await;
    let members = nodes[0].json(&["list_queues", "name", "members"]);
    let triggers = members
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|q| q["name"] == topology.triggers_queue.as_str())
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        triggers["members"].as_array().map(Vec::len),
        Some(3),
        "x-quorum-initial-group-size 3 gives three replicas: {triggers}"
    );

    let db = TestDb::new().await;
    let tenants = import_tenants(&db, 20).await;
    let url_list = urls.join(",");
    let w = Worker::spawn_on(
        "rabbit",
        &prefix,
        &db,
        Links { pg: None, mq: None },
        &[
            ("AMQP_URL", url_list.as_str()),
            ("REVENUE_OS__AMQP__CONNECT_TIMEOUT_SECS", "6"),
            ("REVENUE_OS__KERNEL__MIN_CYCLE_INTERVAL_HOURS", "0"),
        ],
    );
    w.ready(60).await;
    step(started, "worker ready");

    // The burst's first part, then the worker's node dies mid-way; the burst goes on.
    let a = eventually(10, "the worker's node", || async {
        worker_node(&nodes, &prefix)
    })
    .await;
    let first_leader = leader(&nodes, &topology.triggers_queue);
    let mut publisher = Publisher::new(amqp.clone(), topology.clone());
    let mut ids = publisher.rounds(&tenants, 0..5).await;
    wait_cycles(&db, 20, 60, "cycles under way").await;
    step(started, "cycles under way");
    let at_kill = cycles(&db).await;
    let killed = Instant::now();
    nodes[a].kill9();
    ids.extend(publisher.rounds(&tenants, 5..7).await);
    let count = || async { Some(cycles(&db).await) };
    let resumed1 = resumed_after(count, at_kill, killed, 60).await;
    step(started, "cycles resumed after the first kill");
    eventually(60, "worker ready after its node died", || async {
        (w.probe("/readyz").await == Some(200)).then_some(())
    })
    .await;
    let ready1 = killed.elapsed().as_secs_f64();
    let b = eventually(10, "the worker's new node", || async {
        worker_node(&nodes, &prefix)
    })
    .await;
    assert_ne!(a, b, "the worker moved to a live node");
    step(started, "worker moved to a live node");

    // The node comes back (same data: it rejoins), then the triggers queue's leader dies
    // while the burst's last part is being worked on.
    nodes[a].start();
    let back = tokio::task::block_in_place(|| {
        nodes[a].await_startup();
        Instant::now()
    });
    let l = eventually(30, "the triggers queue's leader", || async {
        leader(&nodes, &topology.triggers_queue)
    })
    .await;
    let li = nodes
        .iter()
        .position(|n| n.name == l)
        .expect("the leader is one of ours");
    let worker_on_leader = worker_node(&nodes, &prefix) == Some(li);
    step(started, "node back; leader found");
    ids.extend(publisher.rounds(&tenants, 7..10).await);
    let at_kill2 = cycles(&db).await;
    let killed2 = Instant::now();
    nodes[li].kill9();
    let count = || async { Some(cycles(&db).await) };
    let resumed2 = resumed_after(count, at_kill2, killed2, 60).await;
    step(started, "cycles resumed after the leader's kill");
    let new_leader = eventually(30, "a new leader", || async {
        leader(&nodes, &topology.triggers_queue).filter(|n| *n != l)
    })
    .await;

    // Settle: every trigger has its cycle, the outbox is empty, the collectors hold the rest.
    wait_cycles(&db, ids.len() as i64, 120, "a cycle per trigger").await;
    step(started, "a cycle per trigger");
    crate::common::amqp::wait_outbox_drained(&db, 120).await;
    step(started, "outbox drained");
    let expected = db.count("SELECT count(*) FROM actions").await as usize;
    let mut delivered = vec![];
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        delivered.extend(drain(&amqp, &collectors).await);
        let distinct: BTreeSet<&String> = delivered.iter().collect();
        if distinct.len() >= expected || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dead = depth(&amqp, &topology.dead_queue).await as usize;
    step(started, "collectors drained");
    let t = tally(&db, &ids, &delivered, dead).await;
    let leader_note = format!(
        "{}, {} the worker's node",
        l.split('@').next().unwrap_or(&l),
        if worker_on_leader { "also" } else { "not" }
    );
    let note = format!(
        "cluster formed in {formed:.1} s (boot {booted:.1} s, joins {joined:.1} s); worker's node killed: cycles again after \
         {resumed1:.1} s, /readyz 200 after {ready1:.1} s; triggers' quorum leader ({}) killed: \
         cycles again after {resumed2:.1} s, new leader {new_leader}; {} publishes retried; \
         leader at the first kill {}; node back after {:.1} s",
        leader_note,
        publisher.retried,
        first_leader.as_deref().unwrap_or("?"),
        back.duration_since(killed).as_secs_f64()
    );
    report(
        "rabbitmq_node_loss",
        "3 nodes: kill -9 of the worker's node, then of the triggers queue's leader",
        &t,
        &note,
    );
    assert_eq!(t.triggers, 200);
    assert!(t.clean(), "{t:?}");
    assert!(t.actions > 0, "{t:?}");
    assert!(
        w.count("connected to broker node") >= 2,
        "the worker said which node it moved to"
    );
    publisher.close().await;
    w.stop();
    db.cleanup().await;
    for n in &mut nodes {
        n.kill9();
    }
}
