//! `approve`: release a held action; also the decision both `approve` and `reject` make.

use super::{Output, json, load, runtime};
use crate::error::Error;
use crate::store::{ApprovalOutcome, ApprovalRequest};

#[derive(clap::Args)]
pub struct Args {
    /// `<cycle_id>:<action_id>`, one or more: each is decided alone.
    #[arg(required = true)]
    action: Vec<String>,
    #[arg(long)]
    by: String,
    /// The hash of the action as you saw it (`approvals` prints it), one per action in
    /// order; default: the action as printed now.
    #[arg(long)]
    hash: Vec<String>,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let by = args.by;
    decide_many(&args.action, &args.hash, |hash| ApprovalRequest::Approve {
        by: by.clone(),
        hash,
    })
}

/// `approve` / `reject` of one or more actions: one alone prints as before; several print a
/// list with each item's result, and exit 2 if any was refused.
pub(super) fn decide_many(
    targets: &[String],
    hashes: &[String],
    request: impl Fn(String) -> ApprovalRequest,
) -> Result<Output, Error> {
    if !hashes.is_empty() && hashes.len() != targets.len() {
        return Err(Error::Usage(format!(
            "{} --hash for {} actions: give one per action, or none",
            hashes.len(),
            targets.len()
        )));
    }
    if let [one] = targets {
        return decide(one, hashes.first().cloned(), &request);
    }
    let mut items = Vec::new();
    let mut refused = false;
    for (i, target) in targets.iter().enumerate() {
        let item = match decide(target, hashes.get(i).cloned(), &request) {
            Ok(Output::Json(j)) => serde_json::from_str(&j).unwrap_or(serde_json::Value::Null),
            Ok(_) => serde_json::Value::Null,
            Err(Error::Refused { body }) => {
                refused = true;
                body
            }
            Err(e) => return Err(e),
        };
        items.push(item);
    }
    let body = serde_json::json!({ "items": items });
    if refused {
        return Err(Error::Refused { body });
    }
    json(&body)
}

/// The decision, bound to the hash given or to the action as printed now.
fn decide(
    target: &str,
    hash: Option<String>,
    request: &dyn Fn(String) -> ApprovalRequest,
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
            ApprovalOutcome::FirstApproval { needed } => json(&body(&format!(
                "first approval recorded: it needs {needed} distinct approvers"
            ))),
            ApprovalOutcome::SameApprover => {
                refused("refused: the second approval must be another person's")
            }
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
