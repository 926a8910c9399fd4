//! The `revenue-os worker` binary as a child process: spawn it on a test's prefix and
//! database, talk HTTP to its ops endpoints, stop it with SIGTERM.

use super::amqp::amqp_url;
use super::db::TestDb;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A worker command for this test's prefix, database and ops port; stdout discarded.
pub fn worker_command(prefix: &str, db: &TestDb, port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revenue-os"));
    c.arg("worker")
        .env("AMQP_URL", amqp_url())
        .env("DATABASE_URL", db.url())
        .env("REVENUE_OS__AMQP__PREFIX", prefix)
        .env("REVENUE_OS__AMQP__CONCURRENCY", "2")
        .env("REVENUE_OS__DATABASE__MIGRATE_ON_START", "true")
        .env("REVENUE_OS__WORKER__OUTBOX_SWEEP_SECS", "1")
        .env("REVENUE_OS__WORKER__SHUTDOWN_GRACE_SECS", "20")
        .env("REVENUE_OS__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        // Parallel workers must not share the console's default port.
        .env("REVENUE_OS__CONSOLE__LISTEN", "127.0.0.1:0")
        .env_remove("REVENUE_OS_CONSOLE_TOKEN")
        .env("REVENUE_OS__LOG__FORMAT", "human")
        .env("RUST_LOG", "warn,revenue_os=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    c
}

pub fn spawn_worker(prefix: &str, db: &TestDb, port: u16) -> Child {
    worker_command(prefix, db, port).spawn().unwrap()
}

/// A plain HTTP/1.0 GET (no client crate needed): (status, body).
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let status = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    })
    .await
    .unwrap()
}

pub async fn sigterm_and_wait(mut child: Child) -> std::process::ExitStatus {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("worker did not exit within 30s of SIGTERM");
    })
    .await
    .unwrap()
}

/// A `revenue-os console` command on this test's database and port; with `token`, writable.
pub fn console_command(db: &TestDb, listen: &str, token: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revenue-os"));
    c.arg("console")
        .env("AMQP_URL", amqp_url())
        .env("DATABASE_URL", db.url())
        .env("REVENUE_OS__CONSOLE__LISTEN", listen)
        .env("REVENUE_OS__LOG__FORMAT", "human")
        .env("RUST_LOG", "warn,revenue_os=info")
        .env_remove("REVENUE_OS_CONSOLE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(t) = token {
        c.env("REVENUE_OS_CONSOLE_TOKEN", t);
    }
    c
}

/// An HTTP reply: status, headers (names lowercased), body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request with extra headers and a form body (for POST); `None` when the
/// server does not answer.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> Option<Reply> {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    if method == "POST" {
        req += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        );
    }
    req += "\r\n";
    req += form;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
            .collect();
        Some(Reply {
            status,
            headers,
            body: body.to_owned(),
        })
    })
    .await
    .unwrap()
}

/// Kills a child that is still running (a failed test must not leave it behind).
pub struct KillOnDrop(pub Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
