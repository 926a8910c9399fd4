//! A newcomer meets a missing service: `demo`, `migrate`, `import` and `worker` say which
//! service, at which address, and the README's command that starts it, in one line.

use crate::common::db::TestDb;
use crate::common::process::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const START_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
const START_RABBITMQ: &str = "rabbitmq-server -detached";

fn revenue_os(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revenue-os"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("REVENUE_OS__LOG__FORMAT", "human")
        .env_remove("REVENUE_OS_CONSOLE_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Exit 1 and exactly one stderr line naming the service, the address and the command.
fn says_down(out: &std::process::Output, service: &str, addr: &str, start: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(
        line.contains(&format!("{service} is not reachable at {addr}")),
        "{line}"
    );
    assert!(line.contains(start), "{line}");
}

#[test]
fn postgresql_down_is_said_with_its_address_and_start_command() {
    let port = free_port(); // nothing listens there
    let url = format!("postgres://postgres@127.0.0.1:{port}/revenue_os");
    let addr = format!("127.0.0.1:{port}");
    let env = [("DATABASE_URL", url)];
    for args in [
        &["migrate"][..],
        &["import", "tests/fixtures/valid/demand_bound.json"],
        &["demo"],
        &["worker"],
    ] {
        let out = revenue_os(args, &env);
        says_down(&out, "PostgreSQL", &addr, START_POSTGRES);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_down_is_said_with_its_address_and_start_command() {
    let db = TestDb::new().await;
    let port = free_port();
    let amqp = format!("amqp://127.0.0.1:{port}/%2f");
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("DATABASE_URL", db.url().to_owned()),
        ("AMQP_URL", amqp.clone()),
    ];
    let out = revenue_os(&["demo"], &env);
    says_down(&out, "RabbitMQ", &addr, START_RABBITMQ);

    // The worker waits for the broker, saying so in its log.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_revenue-os"))
        .arg("worker")
        .env("DATABASE_URL", db.url())
        .env("AMQP_URL", &amqp)
        .env("REVENUE_OS__LOG__FORMAT", "human")
        .env("REVENUE_OS__HTTP__LISTEN", "127.0.0.1:0")
        .env("REVENUE_OS__CONSOLE__LISTEN", "")
        .env_remove("REVENUE_OS_CONSOLE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .take_while(|_| Instant::now() < deadline)
            .find(|l| l.contains("RabbitMQ is not reachable"))
    });
    let line = tokio::time::timeout(Duration::from_secs(60), found).await;
    let _ = worker.kill();
    let _ = worker.wait();
    let line = line
        .expect("a log line in time")
        .unwrap()
        .expect("the line");
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains(START_RABBITMQ), "{line}");
    db.cleanup().await;
}
