//! The kernel's integration tests and its contract fixtures: one test binary (one link), a
//! module per concern, one support module. Run one concern with a filter, e.g.
//! `cargo test --test kernel scenarios`.

mod cli;
mod contract;
mod never_panics;
mod power;
mod principles;
mod properties;
mod scenarios;
mod snapshots;
mod support;
