//! `dlq list` / `dlq replay`: dead-lettered triggers.

use super::{Output, json, load, runtime};
use crate::broker::{self, Topology, dlq};
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print up to --limit dead-lettered triggers with their reason; they stay queued.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Republish up to --limit dead-lettered triggers to the triggers exchange, same message_id.
    Replay {
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    runtime(async move {
        let topology = Topology::new(
            &settings.amqp.prefix,
            &catalog,
            settings.amqp.delivery_limit,
        );
        let name = broker::connection_name(&topology.prefix, "dlq");
        let conn = broker::connect(&settings.amqp, &name).await?;
        let out = match args.action {
            Action::List { limit } => dlq::list(&conn, &topology, limit)
                .await
                .map_err(Error::from)
                .and_then(|v| json(&v)),
            Action::Replay { limit } => dlq::replay(&conn, &topology, limit)
                .await
                .map_err(Error::from)
                .and_then(|r| json(&r)),
        };
        let _ = conn.close(200, "bye".into()).await;
        out
    })
}
