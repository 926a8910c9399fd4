//! `bench`: the capacity benchmark (`crate::bench`).

use super::{Output, json, load, runtime};
use crate::bench::BenchOptions;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// One whole morning instead: seed the tenants' history, then time the load, the
    /// watchdog, deviation detection and every tenant's cycle (`--triggers` is not used).
    #[arg(long)]
    morning: bool,
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// `--morning`: days of history per tenant.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// `--morning`: applied, watched actions per tenant.
    #[arg(long, default_value_t = 5)]
    actions_per_tenant: usize,
    /// Triggers published at once (saturation phase).
    #[arg(long, default_value_t = 10_000)]
    triggers: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Triggers per second in the paced (latency) phase.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value_t = 10)]
    paced_seconds: u32,
    #[arg(long, default_value_t = 8)]
    pgbench_clients: u32,
    #[arg(long, default_value_t = 20)]
    pgbench_seconds: u32,
}

pub fn run(args: Args) -> Result<Output, Error> {
    if args.morning {
        return morning(args);
    }
    let opts = BenchOptions {
        tenants: args.tenants,
        triggers: args.triggers,
        workers: args.workers,
        paced_rate: args.rate,
        paced_seconds: args.paced_seconds,
        pgbench_clients: args.pgbench_clients,
        pgbench_seconds: args.pgbench_seconds,
    };
    let (settings, catalog) = load()?;
    runtime(async move {
        let say = |line: &str| eprintln!("{line}");
        json(&crate::bench::run(settings, catalog, &opts, say).await?)
    })
}

fn morning(args: Args) -> Result<Output, Error> {
    let opts = crate::bench::morning::MorningOptions {
        tenants: args.tenants,
        days: args.days,
        actions_per_tenant: args.actions_per_tenant,
        workers: args.workers,
        paced_rate: args.rate,
        paced_seconds: args.paced_seconds,
        pgbench_clients: args.pgbench_clients,
        pgbench_seconds: args.pgbench_seconds,
    };
    let (settings, catalog) = load()?;
    runtime(async move {
        let say = |line: &str| eprintln!("{line}");
        json(&crate::bench::morning::run(settings, catalog, &opts, say).await?)
    })
}
