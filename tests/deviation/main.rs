//! The deviation detector's tests beyond its unit tests: the calibration on the fixed
//! synthetic generator. Run with `cargo test --test deviation -- --nocapture` to see the table.

mod calibration;
pub mod synth;
