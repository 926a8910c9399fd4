//! `loads`: recent loads with their counters, newest first.

use super::{Output, json, runtime};
use crate::config::Settings;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
    #[arg(long, default_value_t = 20)]
    limit: i64,
}

pub fn run(a: Args) -> Result<Output, Error> {
    let settings = Settings::load()?;
    runtime(async move { json(&crate::app::ingest::loads(&settings, a.tenant, a.limit).await?) })
}
