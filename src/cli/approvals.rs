//! `approvals`: actions waiting for a person, with the command that approves each.

use super::{Output, json, runtime};
use crate::config::Settings;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let settings = Settings::load()?;
    runtime(async move {
        let pending = crate::app::store(&settings, false)
            .await?
            .pending_approvals(args.tenant)
            .await?;
        for p in &pending {
            eprintln!(
                "{}:{}  ({})\n  revenue-os approve {}:{} --by NAME --hash {}",
                p.cycle_id,
                p.action_id,
                p.reason.as_deref().unwrap_or(""),
                p.cycle_id,
                p.action_id,
                p.hash
            );
        }
        json(&pending)
    })
}
