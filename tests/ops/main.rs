//! ops integration tests, one binary (one link, one process) for the group.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod bench;
mod browser;
mod console;
mod dead_webhooks;
mod demo;
mod deploy;
mod executors_doc;
mod layers;
mod observability;
mod operators;
mod services;
mod worker_doc;
