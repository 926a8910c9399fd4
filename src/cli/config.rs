//! `config`: the effective settings, secrets redacted.

use super::{Output, json};
use crate::config::Settings;
use crate::error::Error;

pub fn run() -> Result<Output, Error> {
    json(&Settings::load()?.redacted())
}
