//! `reject`: refuse a held action, with the reason.

use super::Output;
use super::approve::decide_many;
use crate::error::Error;
use crate::store::ApprovalRequest;

#[derive(clap::Args)]
pub struct Args {
    /// `<cycle_id>:<action_id>`, one or more.
    #[arg(required = true)]
    action: Vec<String>,
    #[arg(long)]
    by: String,
    #[arg(long)]
    reason: String,
    #[arg(long)]
    hash: Vec<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (by, reason) = (args.by, args.reason);
    decide_many(&args.action, &args.hash, |hash| ApprovalRequest::Reject {
        by: by.clone(),
        hash,
        reason: reason.clone(),
    })
}
