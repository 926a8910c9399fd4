//! store integration tests, one binary (one link, one process) for the group.

#[path = "../common/mod.rs"]
mod common;

mod approvals;
mod batch;
mod cycle;
mod errors;
mod import;
mod ingest;
mod isolation;
mod migrate;
mod outbox_body;
mod partitions;
mod reports;
mod rls;
mod roundtrip;
mod skipped;
mod tls;
