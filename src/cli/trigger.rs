//! `trigger`: publish one trigger; `--wait` prints the cycle's result.

use super::{Output, date, json, load, runtime, window};
use crate::broker::{Topology, TriggerClient};
use crate::contract::{Trigger, TriggerMessage, TriggerType};
use crate::error::Error;
use chrono::{NaiveDate, Utc};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: uuid::Uuid,
    #[arg(long = "type", default_value = "manual")]
    kind: TriggerType,
    #[arg(long, default_value = "cli")]
    source: String,
    /// Analysis window start (YYYY-MM-DD); needs --end.
    #[arg(long, requires = "end", value_parser = date)]
    start: Option<NaiveDate>,
    /// Analysis window end (YYYY-MM-DD); needs --start.
    #[arg(long, requires = "start", value_parser = date)]
    end: Option<NaiveDate>,
    /// Wait for the result through reply_to and print it (exit 2 if the cycle failed).
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let window = window(args.start, args.end)?;
    let (settings, catalog) = load()?;
    let msg = TriggerMessage {
        tenant_id: args.tenant.to_string(),
        trigger: Trigger {
            kind: args.kind,
            source: args.source,
            triggered_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        analysis_window: window.map(|w| w.to_window()),
    };
    runtime(async move {
        let topology = Topology::new(
            &settings.amqp.prefix,
            &catalog,
            settings.amqp.delivery_limit,
        );
        let client = TriggerClient::connect(&settings.amqp, topology).await?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let out = if args.wait {
            let timeout = std::time::Duration::from_secs(args.timeout);
            match client.send_and_wait(&msg, &message_id, timeout).await {
                Ok(reply) => {
                    eprintln!("message_id {message_id}: {}", reply.status);
                    if reply.status == "completed" {
                        json(&reply.body)
                    } else {
                        Err(Error::CycleFailed {
                            status: reply.status,
                            body: reply.body,
                        })
                    }
                }
                Err(e) => Err(Error::Run(format!("message_id {message_id}: {e}"))),
            }
        } else {
            client
                .send(&msg, &message_id)
                .await
                .map(|()| Output::Line(message_id))
                .map_err(Error::from)
        };
        client.close().await;
        out
    })
}
