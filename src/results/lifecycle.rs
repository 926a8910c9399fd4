//! The action lifecycle: one pure function from (status, report) to the next status, and the
//! judgement that says what a report changes. Unit-tested here; the store applies it.
//!
//! ```text
//! pending_approval ─approve─▶ pending ─confirm─▶ published ─▶ acknowledged ─▶ applied ─▶ concluded
//!                                 └──────────────┴──────────────┴─▶ failed | rejected      │
//!                                                                              watchdog ─▶ reverting ─▶ reverted
//!                                                                                              └─▶ revert_failed
//! ```

use crate::contract::{
    ActionResult, ActionStatus, KnownLever, Report, ReportKind, ReportPayload, Subject,
};
use crate::store::{ActionFacts, AppliedChange, Judgement, ReportPolicy, ReportResult};
use chrono::{DateTime, SecondsFormat, Utc};

/// Where a report takes an action from `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    To(ActionStatus),
    /// Allowed, but the action is already past it.
    Late,
    Invalid,
}

/// The transition table. `on_revert` is a report on the revert the watchdog published.
pub fn step(status: ActionStatus, kind: ReportKind, on_revert: bool) -> Step {
    use ActionStatus as S;
    use ReportKind as K;
    if on_revert {
        return match (status, kind) {
            (S::Reverting, K::Acknowledged) => Step::Late,
            (S::Reverting, K::Applied) => Step::To(S::Reverted),
            (S::Reverting, K::Failed | K::Rejected) => Step::To(S::RevertFailed),
            (S::Reverted, K::Acknowledged) => Step::Late,
            _ => Step::Invalid,
        };
    }
    // An executor may report before the broker's confirm marked the action published.
    let sent = matches!(status, S::Pending | S::Published);
    match (status, kind) {
        (_, K::Acknowledged) if sent => Step::To(S::Acknowledged),
        (S::Acknowledged, K::Acknowledged) => Step::Late,
        (
            S::Applied | S::Reverting | S::Reverted | S::RevertFailed | S::Concluded,
            K::Acknowledged,
        ) => Step::Late,
        (_, K::Applied) if sent || status == S::Acknowledged => Step::To(S::Applied),
        (_, K::Failed) if sent || status == S::Acknowledged => Step::To(S::Failed),
        (_, K::Rejected) if sent || status == S::Acknowledged => Step::To(S::Rejected),
        (S::Applied, K::Outcome) => Step::To(S::Concluded),
        _ => Step::Invalid,
    }
}

/// The lifecycle as the store's `ReportPolicy`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifecycle;

impl ReportPolicy for Lifecycle {
    fn judge(&self, facts: &ActionFacts, report: &Report, received_at: DateTime<Utc>) -> Judgement {
        let on_revert = matches!(report.subject, Subject::Revert { .. });
        let unchanged = |result| Judgement {
            result,
            status: facts.status,
            applied: None,
            lever: None,
            outcome: None,
        };
        let status = match step(facts.status, report.kind(), on_revert) {
            Step::Invalid => return unchanged(ReportResult::InvalidTransition),
            Step::Late => return unchanged(ReportResult::Late),
            Step::To(s) => s,
        };
        let at = report.time.unwrap_or(received_at);
        let change = &facts.action.proposed_change;
        let lever = |a: &crate::contract::report::Applied| KnownLever {
            subsystem: facts.action.owner_subsystem,
            entity_id: facts.action.target_entity.as_ref().map(|e| e.id.clone()),
            field: change.field.clone(),
            value: a.after.clone(),
            // What a revert restores: `before`, or an inverse on the same field; an inverse on
            // another field is no value of this lever.
            before: match &a.inverse {
                None => Some(a.before.clone()),
                Some(i) => (i.field == change.field).then(|| i.value.clone()),
            },
            since: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            cycle_id: facts.cycle_id.to_string(),
            action_id: facts.action_id.clone(),
        };
        let mut j = Judgement {
            result: ReportResult::Applied,
            status,
            applied: None,
            lever: None,
            outcome: None,
        };
        match &report.payload {
            ReportPayload::Applied(a) if on_revert => j.lever = Some(lever(a)),
            ReportPayload::Applied(a) => {
                j.applied = Some(AppliedChange {
                    before: a.before.clone(),
                    after: a.after.clone(),
                    inverse: a
                        .inverse
                        .as_ref()
                        .and_then(|i| serde_json::to_value(i).ok()),
                    at,
                });
                j.lever = Some(lever(a));
            }
            ReportPayload::Outcome(o) => {
                j.outcome = Some(ActionResult {
                    action_id: facts.action_id.clone(),
                    target_metric: o.target_metric.clone(),
                    baseline_value: o.baseline_value,
                    observed_value: o.observed_value,
                    delta: o.delta,
                    confidence: o.confidence,
                    outcome: o.outcome,
                })
            }
            ReportPayload::Acknowledged(_)
            | ReportPayload::Failed(_)
            | ReportPayload::Rejected(_) => {}
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionStatus as S;
    use ReportKind as K;

    #[test]
    fn the_success_path() {
        assert_eq!(
            step(S::Pending, K::Acknowledged, false),
            Step::To(S::Acknowledged)
        );
        assert_eq!(
            step(S::Published, K::Acknowledged, false),
            Step::To(S::Acknowledged)
        );
        assert_eq!(
            step(S::Acknowledged, K::Applied, false),
            Step::To(S::Applied)
        );
        assert_eq!(step(S::Applied, K::Outcome, false), Step::To(S::Concluded));
    }

    #[test]
    fn out_of_order_reports_are_late_not_lost() {
        assert_eq!(step(S::Published, K::Applied, false), Step::To(S::Applied));
        assert_eq!(step(S::Applied, K::Acknowledged, false), Step::Late);
        assert_eq!(step(S::Acknowledged, K::Acknowledged, false), Step::Late);
    }

    #[test]
    fn refusals_end_the_action() {
        for from in [S::Pending, S::Published, S::Acknowledged] {
            assert_eq!(step(from, K::Failed, false), Step::To(S::Failed));
            assert_eq!(step(from, K::Rejected, false), Step::To(S::Rejected));
        }
    }

    #[test]
    fn nothing_leaves_a_terminal_state() {
        for from in S::ALL.iter().filter(|s| s.is_terminal()) {
            for kind in ReportKind::ALL {
                let s = step(*from, kind, false);
                assert!(
                    !matches!(s, Step::To(_)),
                    "{from} --{}--> {s:?}",
                    kind.as_str()
                );
            }
        }
    }

    #[test]
    fn never_sent_actions_take_no_reports() {
        for from in [S::PendingApproval, S::Superseded, S::Expired] {
            for kind in ReportKind::ALL {
                assert_eq!(step(from, kind, false), Step::Invalid);
            }
        }
    }

    #[test]
    fn a_revert_ends_reverted_or_revert_failed() {
        assert_eq!(step(S::Reverting, K::Applied, true), Step::To(S::Reverted));
        assert_eq!(
            step(S::Reverting, K::Failed, true),
            Step::To(S::RevertFailed)
        );
        assert_eq!(step(S::Applied, K::Applied, true), Step::Invalid);
        assert_eq!(
            step(S::Applied, K::Applied, false),
            Step::Invalid,
            "applied twice"
        );
    }
}
