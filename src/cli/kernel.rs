//! `kernel`: the decision on one KernelInput, offline.

use super::{Output, json, read_input, timestamp};
use crate::contract::Levers;
use crate::contract::catalog::Catalog;
use crate::error::Error;
use chrono::{DateTime, Utc};

#[derive(clap::Args)]
pub struct Args {
    /// Input file, or `-` for stdin.
    #[arg(default_value = "-")]
    file: String,
    /// Fix the clock (RFC 3339) instead of reading it.
    #[arg(long, value_parser = timestamp)]
    now: Option<DateTime<Utc>>,
    /// Print the reasoning trace to stderr.
    #[arg(long)]
    explain: bool,
    /// The levers' known state (as `assemble --levers-out` writes it); default: none known.
    #[arg(long)]
    levers: Option<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let now = args.now.unwrap_or_else(Utc::now);
    let bytes = read_input(&args.file)?;
    let levers: Levers = match &args.levers {
        None => Levers::default(),
        Some(path) => serde_json::from_slice(&read_input(path)?)
            .map_err(|e| Error::Usage(format!("{path} is not a levers document: {e}")))?,
    };
    let catalog = Catalog::embedded()?;
    let cycle_id = uuid::Uuid::new_v4();
    let result = if args.explain {
        let (result, trace) =
            crate::kernel::run_explained(&bytes, &levers, &catalog, now, cycle_id);
        eprint!("{trace}");
        result
    } else {
        crate::kernel::run(&bytes, &levers, &catalog, now, cycle_id)
    };
    json(&result?)
}
