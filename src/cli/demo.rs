//! `demo`: the walkthrough, or with `--loop` 60 simulated days of the closed loop.

use super::{Output, load, quiet_logs, read_input, runtime};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// Tenant document to import.
    #[arg(default_value = "tests/fixtures/valid/demand_bound.json")]
    file: String,
    /// Instead: 60 simulated days of a tenant whose metrics respond to applied changes,
    /// through the worker, a stand-in executor and the watchdog on a simulated clock.
    #[arg(long = "loop")]
    closed_loop: bool,
}

pub fn run(args: Args) -> Result<Output, Error> {
    // Read the document before anything connects: a missing file is the operator's error.
    let document = (!args.closed_loop)
        .then(|| read_input(&args.file))
        .transpose()?;
    let (settings, catalog) = load()?;
    quiet_logs(&settings);
    runtime(async move {
        let say = |line: &str| println!("{line}");
        match document {
            Some(doc) => crate::demo::run(settings, catalog, &doc, say).await?,
            None => {
                crate::demo::simulation::run(settings, catalog, say).await?;
            }
        }
        Ok(Output::Nothing)
    })
}
