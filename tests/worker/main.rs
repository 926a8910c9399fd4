//! worker integration tests, one binary (one link, one process) for the group.

#[path = "../common/mod.rs"]
mod common;

mod amqps;
mod deviations;
mod dlq;
mod fatal;
mod flow;
mod levers;
mod limits;
mod periodic;
mod publisher;
mod recovery;
mod reports;
mod retention;
mod sigterm;
mod skipped;
mod watchdog;
mod webhooks;
