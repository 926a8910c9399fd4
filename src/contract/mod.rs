//! Wire types of the `revenue_os_v1` contract and their validation. Pure: no I/O, no clock.

mod checked;
mod error;
mod messages;
mod output_rules;
pub mod schema;
mod types;
mod validate;

pub use checked::Checked;
pub use error::{KernelError, True, Violation};
pub use messages::{ActionMessage, TriggerMessage};
pub use output_rules::validate_output;
pub use types::*;
pub use validate::{
    MAX_TRIGGER_AGE, MAX_TRIGGER_SKEW, check_input, decode_input, parse_date, parse_input,
    parse_timestamp, validate_content,
};
