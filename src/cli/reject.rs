//! `reject`: refuse a held action, with the reason.

use super::Output;
use super::approve::decide;
use crate::error::Error;
use crate::store::ApprovalRequest;

#[derive(clap::Args)]
pub struct Args {
    /// `<cycle_id>:<action_id>`
    action: String,
    #[arg(long)]
    by: String,
    #[arg(long)]
    reason: String,
    #[arg(long)]
    hash: Option<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (by, reason) = (args.by, args.reason);
    decide(&args.action, args.hash, |hash| ApprovalRequest::Reject {
        by,
        hash,
        reason,
    })
}
