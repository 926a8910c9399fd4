//! The benchmark's worker processes: this binary's `worker`, started, waited for, measured
//! (peak RSS) and stopped with SIGTERM.

use crate::config::Settings;
use crate::error::Error;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Workers {
    children: Vec<Child>,
    ports: Vec<u16>,
}

impl Workers {
    pub fn spawn(settings: &Settings, db_url: &str, n: usize) -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::Run(e.to_string()))?;
        let mut children = Vec::new();
        let mut ports = Vec::new();
        // `REVENUE_OS_BENCH_LOG=<file>`: the workers' logs, at info, appended there.
        let log = std::env::var_os("REVENUE_OS_BENCH_LOG").and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        for _ in 0..n {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| Error::Run(e.to_string()))?;
            let child = Command::new(&exe)
                .arg("worker")
                .env("DATABASE_URL", db_url)
                .env("AMQP_URL", &settings.amqp.url)
                .env("REVENUE_OS__AMQP__PREFIX", &settings.amqp.prefix)
                .env(
                    "REVENUE_OS__AMQP__CONCURRENCY",
                    settings.amqp.concurrency.to_string(),
                )
                .env(
                    "REVENUE_OS__DATABASE__POOL_SIZE",
                    settings.database.pool_size.to_string(),
                )
                .env("REVENUE_OS__DATABASE__MIGRATE_ON_START", "false")
                // Every trigger runs a full cycle instead of being skipped as too recent.
                .env("REVENUE_OS__KERNEL__MIN_CYCLE_INTERVAL_HOURS", "0")
                .env("REVENUE_OS__HTTP__LISTEN", format!("127.0.0.1:{port}"))
                .env("REVENUE_OS__CONSOLE__LISTEN", "127.0.0.1:0")
                .env("RUST_LOG", if log.is_some() { "info" } else { "error" })
                .stdout(Stdio::null())
                .stderr(match &log {
                    Some(f) => f
                        .try_clone()
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null()),
                    None => Stdio::null(),
                })
                .spawn()
                .map_err(|e| Error::Run(format!("cannot start a worker: {e}")))?;
            children.push(child);
            ports.push(port);
        }
        Ok(Self { children, ports })
    }

    pub async fn wait_ready(&self) -> Result<(), Error> {
        for port in &self.ports {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if http_status(*port, "/readyz").await == Some(200) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::Run(format!("worker on :{port} never became ready")));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The workers' process ids (their CPU is read from `/proc`).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    pub fn peak_rss_mib(&self) -> Vec<f64> {
        self.children
            .iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok())
            .filter_map(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((kb / 1024.0 * 10.0).round() / 10.0)
            })
            .collect()
    }

    pub fn stop(mut self) {
        for c in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

impl Drop for Workers {
    /// A bench that fails half-way must not leave its workers running: one left behind kept
    /// consuming the bench's queue for 20 minutes after a failed run.
    fn drop(&mut self) {
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

async fn http_status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
