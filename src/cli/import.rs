//! `import`: one KernelInput-shaped tenant document, in one transaction.

use super::{Output, json, load, read_input, runtime};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// Document file, or `-` for stdin.
    file: String,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let bytes = read_input(&args.file)?;
    let (settings, catalog) = load()?;
    runtime(async move { json(&crate::app::import(&settings, &catalog, &bytes).await?) })
}
