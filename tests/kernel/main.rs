//! The kernel's integration tests, one test binary (one link) with a module per concern.

mod snapshots;
