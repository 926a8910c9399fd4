//! Revenue OS: a queue-driven worker that runs the revenue decision kernel once per tenant per
//! cycle. The pipeline is visible in the modules:
//! `contract` (wire types, validation) → `kernel` (pure decision) → `store` (PostgreSQL) →
//! `broker` (RabbitMQ) → `worker` (one unit of work, and the loop that drives it).

pub mod bench;
pub mod broker;
pub mod catalog;
pub mod config;
pub mod contract;
pub mod demo;
pub mod error;
pub mod kernel;
pub mod store;
pub mod telemetry;
pub mod worker;

pub use catalog::Catalog;
pub use error::Error;
