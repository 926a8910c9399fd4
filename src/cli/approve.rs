//! `approve`: release a held action; also the decision both `approve` and `reject` make.

use super::{Output, json, load, runtime};
use crate::error::Error;
use crate::store::{ApprovalOutcome, ApprovalRequest};

#[derive(clap::Args)]
pub struct Args {
    /// `<cycle_id>:<action_id>`
    action: String,
    #[arg(long)]
    by: String,
    /// The hash of the action as you saw it (`approvals` prints it); default: the action
    /// as printed now.
    #[arg(long)]
    hash: Option<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let by = args.by;
    decide(&args.action, args.hash, |hash| ApprovalRequest::Approve {
        by,
        hash,
    })
}

/// The decision, bound to the hash given or to the action as printed now.
pub(super) fn decide(
    target: &str,
    hash: Option<String>,
    request: impl FnOnce(String) -> ApprovalRequest,
) -> Result<Output, Error> {
    let (cycle, action_id) = target
        .split_once(':')
        .and_then(|(c, a)| uuid::Uuid::parse_str(c).ok().map(|c| (c, a.to_owned())))
        .ok_or_else(|| Error::Usage(format!("'{target}' is not <cycle_id>:<action_id>")))?;
    let (settings, catalog) = load()?;
    runtime(async move {
        let store = crate::app::store(&settings, false).await?;
        let hash = match hash {
            Some(h) => h,
            None => {
                let pending = store.pending_approvals(None).await?;
                let shown = pending
                    .iter()
                    .find(|p| p.cycle_id == cycle && p.action_id == action_id);
                match shown {
                    Some(p) => {
                        eprintln!(
                            "{}",
                            serde_json::to_string_pretty(&p.action).unwrap_or_default()
                        );
                        p.hash.clone()
                    }
                    None => String::new(),
                }
            }
        };
        let outcome = crate::app::decide(
            &store,
            &settings,
            &catalog,
            cycle,
            &action_id,
            request(hash),
        )
        .await?;
        let body = |o: &str| serde_json::json!({ "outcome": o, "cycle_id": cycle, "action_id": action_id });
        let refused = |o: &str| Err(Error::Refused { body: body(o) });
        match outcome {
            ApprovalOutcome::Approved { outbox } => json(&serde_json::json!({
                "outcome": "approved", "cycle_id": cycle, "action_id": action_id,
                "message_id": outbox.message.message_id,
            })),
            ApprovalOutcome::Rejected => json(&body("rejected")),
            ApprovalOutcome::StaleHash { current } => {
                let mut b = body("refused: the action changed since it was shown");
                b["current_hash"] = serde_json::json!(current);
                Err(Error::Refused { body: b })
            }
            ApprovalOutcome::Expired => refused("expired"),
            ApprovalOutcome::Superseded => refused("superseded by a newer cycle"),
            ApprovalOutcome::NotPending { status } => {
                refused(&format!("not waiting for approval: {status}"))
            }
            ApprovalOutcome::NotFound => refused("no such action"),
        }
    })
}
