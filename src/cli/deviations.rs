//! `deviations`: detected metric deviations, newest day first (docs/deviations.md);
//! `--detect` first runs detection as of each tenant's newest metric day, `--disable` /
//! `--enable` opt a tenant out or back in.

use super::{Output, date, json, load, runtime};
use crate::broker::Topology;
use crate::error::Error;
use chrono::{NaiveDate, Utc};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
    /// Only days from this one on (YYYY-MM-DD).
    #[arg(long, value_parser = date)]
    since: Option<NaiveDate>,
    /// Print the detections as JSON (every number that decided each).
    #[arg(long)]
    json: bool,
    #[arg(long)]
    detect: bool,
    #[arg(long, requires = "tenant", conflicts_with = "enable")]
    disable: bool,
    #[arg(long, requires = "tenant")]
    enable: bool,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    runtime(async move {
        let store = crate::app::store(&settings, false).await?;
        if let (Some(t), true) = (args.tenant, args.disable || args.enable) {
            store.set_deviation_enabled(t, args.enable).await?;
        }
        if args.detect {
            let topology = Topology::from_settings(&settings.amqp, &catalog);
            let tenants = match args.tenant {
                Some(t) => vec![t],
                None => store.tenant_ids().await?,
            };
            let pass = crate::worker::deviation::detect_for(
                &store,
                &catalog,
                &settings.deviation,
                &topology,
                &tenants,
                Utc::now(),
            )
            .await?;
            eprintln!(
                "detected: {} tenants, {} series assessed, {} deviations recorded, {} triggers queued",
                pass.tenants, pass.assessed, pass.recorded, pass.triggers
            );
        }
        let found = store.deviations(args.tenant, args.since).await?;
        if args.json {
            return json(&found);
        }
        let lines: Vec<String> = found
            .iter()
            .map(|d| {
                let r = &d.row;
                format!(
                    "{} {} {} {}: observed {} expected {} band [{}, {}] k {} {} over {} days{}",
                    r.day,
                    d.tenant_id,
                    r.metric_id,
                    if r.harmful { "HARMFUL" } else { "helpful" },
                    r.observed,
                    r.expected,
                    r.band_lower,
                    r.band_upper,
                    r.k,
                    r.method,
                    r.days_used,
                    d.trigger_message_id
                        .as_deref()
                        .map(|m| format!(", trigger {m}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        Ok(Output::Line(lines.join("\n")))
    })
}
