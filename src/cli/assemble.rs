//! `assemble`: the KernelInput a cycle would hand the kernel for one tenant.

use super::{Output, date, json, runtime, timestamp, window};
use crate::config::Settings;
use crate::contract::{Trigger, TriggerType};
use crate::error::Error;
use chrono::{DateTime, NaiveDate, Utc};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: uuid::Uuid,
    /// Window start (YYYY-MM-DD); default: the 30 days ending yesterday (UTC).
    #[arg(long, requires = "end", value_parser = date)]
    start: Option<NaiveDate>,
    /// Window end (YYYY-MM-DD, inclusive).
    #[arg(long, requires = "start", value_parser = date)]
    end: Option<NaiveDate>,
    #[arg(long, default_value = "manual")]
    trigger_type: TriggerType,
    #[arg(long, default_value = "cli")]
    trigger_source: String,
    /// Fix the clock (RFC 3339): the trigger time and the default window.
    #[arg(long, value_parser = timestamp)]
    now: Option<DateTime<Utc>>,
    /// Also write the levers' known state to this file: with the printed input it
    /// reproduces the cycle offline (`kernel --levers FILE`).
    #[arg(long)]
    levers_out: Option<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let now = args.now.unwrap_or_else(Utc::now);
    let trigger = Trigger {
        kind: args.trigger_type,
        source: args.trigger_source,
        triggered_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let window = window(args.start, args.end)?;
    let settings = Settings::load()?;
    runtime(async move {
        let assembled = crate::app::assemble(&settings, args.tenant, trigger, now, window).await?;
        if let Some(path) = args.levers_out {
            let text =
                serde_json::to_string_pretty(&assembled.levers).map_err(|e| Error::Io(e.into()))?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| Error::Usage(format!("cannot write {path}: {e}")))?;
        }
        json(&assembled.input)
    })
}
