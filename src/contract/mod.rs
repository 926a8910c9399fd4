//! Wire types of the `revenue_os_v1` contract and their validation. Pure: no I/O, no clock.

pub mod catalog;
mod checked;
mod envelope;
mod error;
mod levers;
mod messages;
pub mod notify;
mod output_rules;
mod parse;
pub mod report;
pub mod schema;
mod status;
mod trigger;
mod types;
mod validate;

pub use catalog::Catalog;
pub use checked::Checked;
pub use envelope::{EnvelopeError, check_envelope, is_json};
pub use error::{KernelError, True, Violation};
pub use levers::{KnownLever, Levers};
pub use messages::{ActionMessage, TriggerMessage, action_hash};
pub use notify::{Notification, NotifyEvent};
pub use output_rules::validate_output;
pub use parse::{
    DEFAULT_WINDOW_DAYS, DateRange, MAX_SOURCE_BYTES, format_date, parse_date, parse_timestamp,
};
pub use report::{Report, ReportError, ReportKind, ReportPayload, Subject, decode_report};
pub use status::ActionStatus;
pub use trigger::{ParsedTrigger, decode_trigger};
pub use types::*;
pub use validate::{
    MAX_TRIGGER_AGE, MAX_TRIGGER_SKEW, check_input, decode_input, parse_input, validate_content,
    validate_tenant_settings,
};
