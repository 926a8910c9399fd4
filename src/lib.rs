//! Revenue OS: a queue-driven worker that runs the revenue decision kernel once per tenant per
//! cycle. The pipeline is visible in the modules:
//! `contract` (wire types, validation) → `kernel` (pure decision) → `store` (PostgreSQL) →
//! `broker` (RabbitMQ) → `worker` (one unit of work, and the loop that drives it).
//!
//! The kernel alone, as `revenue-os kernel` runs it:
//!
//! ```
//! use revenue_os::{Catalog, contract::{BindingConstraint, Levers, parse_timestamp}, kernel};
//!
//! let catalog = Catalog::embedded()?;
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/valid/demand_bound.json");
//! let input = std::fs::read(path)?;
//! let now = parse_timestamp("2026-11-26T06:05:00Z").ok_or("bad clock")?;
//! let out = kernel::run(&input, &Levers::default(), &catalog, now, uuid::Uuid::new_v4())?;
//! assert_eq!(out.cycle_summary.binding_constraint, BindingConstraint::Demand);
//! assert!((1..=7).contains(&out.actions.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod app;
pub mod approvals;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod contract;
pub mod demo;
pub mod deviation;
pub mod error;
pub mod ingest;
pub mod kernel;
pub mod memory;
pub mod notify;
pub mod results;
pub mod store;
pub mod telemetry;
pub mod watchdog;
pub mod worker;

pub use contract::Catalog;
pub use error::Error;
