//! Executors report back: reports from `<prefix>.results` become lifecycle steps, known
//! lever values and outcome rows. `lifecycle` is the pure state machine; `unit` handles one
//! delivery, apart from the worker loop that consumes the queue.

pub mod lifecycle;
pub mod unit;

pub use lifecycle::{Lifecycle, Step, step};
pub use unit::{Envelope, Patience, process, process_batch};
