//! `console`: only the operator console, until SIGTERM or SIGINT.

use super::{Output, runtime, until_signal};
use crate::error::Error;

pub fn run() -> Result<Output, Error> {
    runtime(until_signal(crate::app::serve_console))
}
