//! The chaos suite: the `revenue-os worker` binary behind TCP relays this binary owns, under
//! blackholes, outages, a wedged and a restarting broker, killed backends, kill -9, and four
//! workers fed every trigger twice. A checker counts lost, doubled, unpublished and
//! never-delivered work; each must be 0.
//!
//! Its own binary: the faults are long (a 90 s outage, 300 s with `CHAOS_OUTAGE_SECS=300`),
//! and nothing here stops a shared service — every fault is on a relay a test owns, or on its
//! own database's backends and its own child processes — so the scenarios run side by side
//! without touching other tests. Each writes its row of the summary table to
//! `$CARGO_TARGET_TMPDIR/chaos/` (`cat target/tmp/chaos/*.md` prints the table quoted in the
//! README).

#[path = "../common/mod.rs"]
mod common;

mod batch;
mod broker;
mod database;
mod harness;
mod memory;
mod relay;
mod storm;
