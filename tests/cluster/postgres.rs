//! A PostgreSQL primary and a synchronous standby on private ports (initdb + pg_basebackup as
//! the postgres user, under this test's directory). The worker's DSN names both hosts with
//! `target_session_attrs=read-write`. During a burst of 200 triggers: stop the primary with
//! `-m immediate`, then promote the standby. Every trigger ends with one cycle on the new
//! primary, every action reaches its exchange once.

use crate::burst::{cycles, resumed_after, wait_cycles};
use crate::common::amqp::{TestBroker, eventually, import_tenants};
use crate::common::db::TestDb;
use crate::common::process::free_port;
use crate::harness::{Links, Worker, delivered_ids, queue_depth, settle, tally};
use crate::{SERIAL, TestDir, report};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// One server, run as the postgres user from its own data directory.
struct Server {
    data: PathBuf,
    port: u16,
    running: bool,
}

fn as_postgres(program: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{BIN}/{program}")])
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    fn start(&mut self) {
        let data = self.data.display().to_string();
        let log = format!("{data}.log");
        as_postgres(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
        );
        self.running = true;
    }

    fn stop_immediate(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
            self.running = false;
        }
    }

    fn promote(&self) {
        let data = self.data.display().to_string();
        as_postgres("pg_ctl", &["-D", &data, "-w", "-t", "60", "promote"]);
    }

    fn append_conf(&self, file: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join(file))
            .expect("config file");
        f.write_all(text.as_bytes()).expect("append config");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl")])
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// A primary and its synchronous standby (`standby1`), both running.
fn pair(root: &Path) -> (Server, Server) {
    let chown = Command::new("chown")
        .args(["-R", "postgres", &root.display().to_string()])
        .status()
        .expect("chown");
    assert!(chown.success());
    let mut primary = Server {
        data: root.join("primary"),
        port: free_port(),
        running: false,
    };
    let mut standby = Server {
        data: root.join("standby"),
        port: free_port(),
        running: false,
    };
    let p = primary.data.display().to_string();
    as_postgres(
        "initdb",
        &["-D", &p, "-A", "trust", "-U", "postgres", "--no-sync"],
    );
    let socket = root.display().to_string();
    // fsync off: a process crash (-m immediate), not a machine's, is what this test is about.
    primary.append_conf(
        "postgresql.conf",
        &format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n\
             fsync = off\nmax_connections = 100\n",
            primary.port
        ),
    );
    primary.append_conf("pg_hba.conf", "host replication all 127.0.0.1/32 trust\n");
    primary.start();
    let s = standby.data.display().to_string();
    as_postgres(
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-D",
            &s,
            "-X",
            "stream",
            "--no-sync",
        ],
    );
    standby.append_conf(
        "postgresql.auto.conf",
        &format!(
            "port = {}\nprimary_conninfo = 'host=127.0.0.1 port={} user=postgres \
             application_name=standby1'\n",
            standby.port, primary.port
        ),
    );
    std::fs::write(standby.data.join("standby.signal"), "").expect("standby.signal");
    let _ = Command::new("chown")
        .args([
            "postgres",
            &standby.data.join("standby.signal").display().to_string(),
        ])
        .status();
    standby.start();
    (primary, standby)
}

/// `SELECT count(*) FROM cycles` on whichever server is primary now; `None` while none is.
async fn try_cycles(url: &str) -> Option<i64> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .ok()?
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .query_one("SELECT count(*) FROM cycles", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_lost_mid_burst_and_its_standby_promoted_loses_and_doubles_nothing() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let dir = TestDir::new("pg");
    let (mut primary, standby) = tokio::task::block_in_place(|| pair(&dir.0));
    let hosts = format!("127.0.0.1:{},127.0.0.1:{}", primary.port, standby.port);
    let admin = format!("postgres://postgres@{hosts}/postgres?target_session_attrs=read-write");
    let sync = crate::common::db::connect(&admin).await;
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = 'standby1'",
        "SELECT pg_reload_conf()",
    ] {
        sync.batch_execute(sql).await.expect("synchronous standby");
    }
    eventually(30, "the standby in sync", || async {
        let r = sync
            .query_opt(
                "SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby1' \
                 AND sync_state = 'sync'",
                &[],
            )
            .await
            .ok()
            .flatten();
        r.map(|_| ())
    })
    .await;
    drop(sync);
    let built = started.elapsed().as_secs_f64();

    // Roles, database and migrations on the primary; the worker's URL names both hosts.
    let db = TestDb::on(&admin, 16).await;
    assert!(db.url().contains(&hosts), "{}", db.url());
    let b = TestBroker::new().await;
    let tenants = import_tenants(&db, 20).await;
    let actions = b.collect_actions().await;
    let w = Worker::spawn_on(
        "postgres",
        &b.prefix,
        &db,
        Links { pg: None, mq: None },
        &[("REVENUE_OS__KERNEL__MIN_CYCLE_INTERVAL_HOURS", "0")],
    );
    w.ready(60).await;
    let before = w.probe_body("/readyz").await.unwrap_or_default();
    assert!(
        before.contains(&format!("database primary: 127.0.0.1:{}", primary.port)),
        "{before}"
    );

    let ids = b.trigger_rounds(&tenants, 0..10).await;
    wait_cycles(&db, 40, 60, "cycles under way").await;
    let at_kill = cycles(&db).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| primary.stop_immediate());
    // The worker meets a dead primary and a standby that refuses writes, then the promotion.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let promoted_at = killed.elapsed().as_secs_f64();
    tokio::task::block_in_place(|| standby.promote());
    let db_url = crate::common::db::url_as_on(&admin, "postgres", &db.name);
    let resumed = resumed_after(|| try_cycles(&db_url), at_kill, killed, 90).await;
    eventually(60, "worker ready on the new primary", || async {
        (w.probe("/readyz").await == Some(200)).then_some(())
    })
    .await;
    let ready = killed.elapsed().as_secs_f64();
    let after = w.probe_body("/readyz").await.unwrap_or_default();
    assert!(
        after.contains(&format!("database primary: 127.0.0.1:{}", standby.port)),
        "{after}"
    );

    settle(&db, &actions, ids.len(), 120).await;
    let dead = queue_depth(&b, &b.topology.dead_queue).await;
    let t = tally(&db, &ids, &delivered_ids(&actions), dead).await;

    // A command with the key=value form of the same DSN finds the new primary too.
    let kv = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=revenue_os_owner dbname={} \
         target_session_attrs=read-write",
        primary.port, standby.port, db.name
    );
    let migrate = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .arg("migrate")
        .env("DATABASE_URL", &kv)
        .env("REVENUE_OS__LOG__FORMAT", "human")
        .output()
        .expect("revenue-os migrate");
    assert!(
        migrate.status.success(),
        "migrate with a key=value multi-host DSN: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let note = format!(
        "primary + synchronous standby built in {built:.1} s; primary stopped at {at_kill} \
         cycles, standby promoted {promoted_at:.1} s later; cycles again {resumed:.1} s after \
         the stop, /readyz 200 (naming the new primary) after {ready:.1} s; {} log lines \
         during the failover",
        w.complaints()
    );
    report(
        "postgres_failover",
        "primary stopped -m immediate mid-burst, synchronous standby promoted",
        &t,
        &note,
    );
    assert_eq!(t.triggers, 200);
    assert!(t.clean(), "{t:?}");
    w.stop();
    db.cleanup().await;
    b.cleanup().await;
    drop(standby);
}
