//! People in the loop: which actions a tenant's policy holds for a person, and what a
//! decision on a held action may do. The rules are pure; the store keeps the facts and the
//! record, and `app::decide` (a person) or `sweep` (the worker) hands these rules to it.
//! `roles.rs` says what each operator role may do in the console.

pub mod glance;
pub mod roles;

use crate::contract::{Action, ActionStatus, ActionType, KernelOutput};
use crate::store::{
    ApprovalFacts, ApprovalGate, ApprovalOutcome, ApprovalPolicy, ApprovalRequest, Gate, HeldFacts,
    OutboxMessage, Store, StoreError,
};
use chrono::{DateTime, Duration, Utc};

/// Whether `pattern` (`<subsystem>:<type>`, `*` for any; a bare subsystem means every type)
/// names `action`.
fn matches(pattern: &str, action: &Action) -> bool {
    let (s, t) = pattern.split_once(':').unwrap_or((pattern, "*"));
    (s == "*" || s == action.owner_subsystem.as_str()) && (t == "*" || t == action.kind.as_str())
}

/// How many distinct people must approve `action` under `policy`: two for a category the
/// policy names in `two_approvers`, else one.
pub fn approvers_needed(policy: Option<&ApprovalPolicy>, action: &Action) -> usize {
    match policy {
        Some(p) if p.two_approvers.iter().any(|pat| matches(pat, action)) => 2,
        _ => 1,
    }
}

/// Why `action` needs a person under `policy`, if it does.
pub fn needs_approval(
    policy: &ApprovalPolicy,
    action: &Action,
    tenant_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<String> {
    for pattern in &policy.require {
        if matches(pattern, action) {
            return Some(format!("every {pattern} action needs approval"));
        }
    }
    for pattern in &policy.two_approvers {
        if matches(pattern, action) {
            return Some(format!("every {pattern} action needs two approvers"));
        }
    }
    if let (Some(cap), Some(spend)) = (
        policy.max_added_spend,
        action.guardrails.max_additional_spend,
    ) && spend > cap
    {
        return Some(format!(
            "adds up to {spend} spend, above the {cap} that needs approval"
        ));
    }
    if let Some(max_pct) = policy.max_budget_step_pct
        && action.proposed_change.field.starts_with("budget")
        && let (Some(cur), Some(new)) = (
            action.proposed_change.current_value.as_f64(),
            action.proposed_change.new_value.as_f64(),
        )
        && cur > 0.0
    {
        let step = (new - cur).abs() / cur * 100.0;
        if step > max_pct {
            return Some(format!(
                "moves {} by {step:.1}%, more than the {max_pct}% step that needs approval",
                action.proposed_change.field
            ));
        }
    }
    if let Some(days) = policy.first_days
        && now < tenant_since + Duration::days(i64::from(days))
    {
        return Some(format!(
            "the tenant's first {days} days: every action needs approval"
        ));
    }
    None
}

/// The actions of a completed cycle that wait for a person, with why.
pub fn held(
    facts: &ApprovalFacts,
    output: &KernelOutput,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let Some(policy) = &facts.policy else {
        return vec![];
    };
    output
        .actions
        .iter()
        // Reverts restore a prior state; holding them would hold back a safety net.
        .filter(|a| a.kind != ActionType::Revert)
        .filter_map(|a| {
            needs_approval(policy, a, facts.tenant_since, now).map(|why| (a.action_id.clone(), why))
        })
        .collect()
}

/// What a decision on a held action may do: a pending action expires after `ttl` or when a
/// newer cycle of its tenant completed (the next cycle decides afresh), and an approval must
/// carry the hash of exactly the action it approves.
pub struct Rules<'a> {
    pub ttl: Duration,
    /// The released action's message (the worker's planner builds it).
    pub message: &'a (dyn Fn(&HeldFacts) -> OutboxMessage + Sync),
}

impl ApprovalGate for Rules<'_> {
    fn judge(&self, f: &HeldFacts, request: Option<&ApprovalRequest>, now: DateTime<Utc>) -> Gate {
        if f.status != ActionStatus::PendingApproval {
            return Gate::NotPending;
        }
        if f.superseded {
            return Gate::Supersede;
        }
        if now >= f.created_at + self.ttl {
            return Gate::Expire;
        }
        match request {
            None => Gate::Keep,
            Some(ApprovalRequest::Approve { hash, .. } | ApprovalRequest::Reject { hash, .. })
                if *hash != f.hash =>
            {
                Gate::StaleHash
            }
            Some(ApprovalRequest::Approve { by, hash }) => {
                let needed = approvers_needed(f.policy.as_ref(), &f.action);
                // Only approvals of the action as it is now count.
                let earlier: Vec<&str> = f
                    .first_approvals
                    .iter()
                    .filter(|(_, h)| h.as_deref() == Some(hash.as_str()))
                    .map(|(who, _)| who.as_str())
                    .collect();
                if earlier.contains(&by.as_str()) {
                    Gate::SameApprover
                } else if earlier.len() + 1 >= needed {
                    Gate::Approve((self.message)(f))
                } else {
                    Gate::FirstApproval { needed }
                }
            }
            Some(ApprovalRequest::Reject { .. }) => Gate::Reject,
        }
    }
}

/// Expires and supersedes held actions whose time has passed (the worker's periodic sweep).
pub async fn sweep(store: &Store, ttl_hours: u32, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let none = |_: &HeldFacts| OutboxMessage {
        exchange: String::new(),
        routing_key: String::new(),
        message_id: String::new(),
        headers: serde_json::json!({}),
        body: vec![],
        action_id: None,
        stored: crate::store::StoredBody::Verbatim,
    };
    let rules = Rules {
        ttl: Duration::hours(i64::from(ttl_hours)),
        message: &none,
    };
    let done = store.sweep_pending_approvals(&rules, now).await?;
    for (_, outcome) in &done {
        crate::telemetry::metrics::approval(label(outcome));
    }
    Ok(done.len())
}

/// The metric label of a decision.
pub fn label(o: &ApprovalOutcome) -> &'static str {
    match o {
        ApprovalOutcome::Approved { .. } => "approved",
        ApprovalOutcome::Rejected => "rejected",
        ApprovalOutcome::StaleHash { .. } => "refused_stale",
        ApprovalOutcome::FirstApproval { .. } => "first_approval",
        ApprovalOutcome::SameApprover => "same_approver",
        ApprovalOutcome::Expired => "expired",
        ApprovalOutcome::Superseded => "superseded",
        ApprovalOutcome::NotPending { .. } | ApprovalOutcome::NotFound => "not_pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(
        subsystem: &str,
        kind: &str,
        field: &str,
        cur: f64,
        new: f64,
        spend: Option<f64>,
    ) -> Action {
        serde_json::from_value(json!({
            "action_id": format!("{subsystem}.{kind}.x.{field}"), "priority": 1,
            "owner_subsystem": subsystem, "type": kind, "target_metric": "pipeline_total",
            "proposed_change": {"field": field, "current_value": cur, "new_value": new},
            "guardrails": {"abort_conditions": [], "max_additional_spend": spend},
            "observation_window_days": 14,
            "expected_impact": {"metric_id": "pipeline_total", "direction": "increase",
                                "magnitude_pct": 5.0, "confidence": 0.5},
            "notes_for_humans": "n"
        }))
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        crate::contract::parse_timestamp(s).unwrap()
    }

    #[test]
    fn each_rule_holds_what_it_says() {
        let t0 = at("2026-11-01T00:00:00Z");
        let now = at("2026-11-26T06:00:00Z");
        let none = ApprovalPolicy::default();
        let scale = action(
            "campaigns",
            "scale",
            "budget_daily",
            500.0,
            600.0,
            Some(100.0),
        );
        assert_eq!(
            needs_approval(&none, &scale, t0, now),
            None,
            "the default holds nothing"
        );
        let by_type = ApprovalPolicy {
            require: vec!["pricing:*".into(), "*:experiment".into()],
            ..none.clone()
        };
        assert!(
            needs_approval(
                &by_type,
                &action("pricing", "config_change", "trial_days", 14.0, 7.0, None),
                t0,
                now
            )
            .is_some()
        );
        assert!(
            needs_approval(
                &by_type,
                &action("crm", "experiment", "max_touches", 3.0, 4.0, None),
                t0,
                now
            )
            .is_some()
        );
        assert_eq!(needs_approval(&by_type, &scale, t0, now), None);
        let spend = ApprovalPolicy {
            max_added_spend: Some(50.0),
            ..none.clone()
        };
        assert!(needs_approval(&spend, &scale, t0, now).is_some());
        let step = ApprovalPolicy {
            max_budget_step_pct: Some(15.0),
            ..none.clone()
        };
        assert!(
            needs_approval(&step, &scale, t0, now)
                .unwrap()
                .contains("20.0%")
        );
        let young = ApprovalPolicy {
            first_days: Some(30),
            ..none
        };
        assert!(needs_approval(&young, &scale, t0, now).is_some());
        assert_eq!(
            needs_approval(&young, &scale, t0, at("2026-12-02T00:00:00Z")),
            None
        );
    }
}
