//! Losing a node for good: a 3-node RabbitMQ cluster and a PostgreSQL primary with a
//! synchronous standby, each built by its test under its own directory on private ports,
//! the `revenue-os worker` binary running against them as the least-privilege role. The chaos
//! suite's checker counts lost, doubled and never-delivered work; each must be 0.
//!
//! Its own binary, run serially (`.config/nextest.toml`: the `cluster` test group): the
//! clusters are several servers each on a 2-core machine. Nothing here touches the shared
//! servers beyond a test database and a unique prefix.

#[path = "../common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../chaos/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../chaos/relay.rs"]
mod relay;

mod burst;
mod postgres;
mod rabbit;
mod readonly;
mod upgrade;

use std::path::PathBuf;

/// One test at a time even under `cargo test` (threads): each builds servers of its own.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A directory for one test's servers, removed when dropped.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(kind: &str) -> TestDir {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("cluster")
            .join(format!(
                "{kind}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ));
        std::fs::create_dir_all(&dir).expect("test dir");
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes this scenario's row of the chaos table (`target/tmp/chaos/`) and says it.
pub fn report(scenario: &str, fault: &str, t: &harness::Tally, note: &str) {
    harness::record(scenario, fault, t, note);
}
