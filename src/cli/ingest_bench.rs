//! `ingest-bench`: `ingest`'s throughput and peak memory on a generated metrics file.

use super::{Output, json, load, runtime};
use crate::app::ingest::BenchOptions;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    tenants: u64,
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    #[arg(long, default_value_t = 10)]
    days: u64,
}

pub fn run(a: Args) -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    let o = BenchOptions {
        tenants: a.tenants,
        metrics: a.metrics,
        days: a.days,
    };
    runtime(async move { json(&crate::app::ingest::bench(&settings, &catalog, &o).await?) })
}
