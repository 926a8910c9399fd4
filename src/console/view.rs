//! The tenant view, gathered once from the store and shown twice: as the console's tenant
//! page and as `revenue-os report` text.

use crate::contract::catalog::Catalog;
use crate::contract::{AbortCondition, Action, ActionStatus};
use crate::store::{
    ActionView, CampaignView, CycleBrief, DecisionView, OutcomeView, Store, StoreError,
    StoredEvaluation, StoredReport,
};
use chrono::NaiveDate;
use uuid::Uuid;

/// Cycles shown in the constraint history.
pub const HISTORY_CYCLES: i64 = 30;
/// Evaluations and outcomes shown.
pub const RECENT_ROWS: i64 = 50;

/// One action of the latest cycle with every report on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionHistory {
    pub action: ActionView,
    /// People's decisions on it, when it was held for approval.
    pub decisions: Vec<DecisionView>,
    pub reports: Vec<StoredReport>,
}

/// An abort threshold in force on the priority metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub action_id: String,
    pub priority: i16,
    pub condition: AbortCondition,
}

impl Threshold {
    pub fn label(&self) -> String {
        format!(
            "abort if {} ({}d, #{})",
            self.condition.operator.as_str(),
            self.condition.consecutive_days,
            self.priority
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantView {
    pub tenant_id: Uuid,
    /// Newest first, every status.
    pub cycles: Vec<CycleBrief>,
    /// The latest completed cycle.
    pub latest: Option<CycleBrief>,
    /// Its actions, in priority order.
    pub actions: Vec<ActionHistory>,
    pub priority_metric: Option<String>,
    /// The priority metric by day (tenant level).
    pub series: Vec<(NaiveDate, f64)>,
    /// The target on the priority metric: (targets field, value).
    pub target: Option<(String, f64)>,
    pub thresholds: Vec<Threshold>,
    pub evaluations: Vec<StoredEvaluation>,
    pub outcomes: Vec<OutcomeView>,
    pub campaigns: Vec<CampaignView>,
}

/// Statuses in which an action's abort conditions still apply.
fn in_force(status: &str) -> bool {
    ActionStatus::parse(status).is_some_and(|s| {
        matches!(
            s,
            ActionStatus::PendingApproval
                | ActionStatus::Pending
                | ActionStatus::Published
                | ActionStatus::Acknowledged
                | ActionStatus::Applied
        )
    })
}

/// The abort conditions on `metric` of the actions still in force.
pub fn thresholds(actions: &[ActionView], metric: &str) -> Vec<Threshold> {
    let mut out: Vec<Threshold> = Vec::new();
    for a in actions.iter().filter(|a| in_force(&a.status)) {
        for c in &a.action.guardrails.abort_conditions {
            let same = |t: &Threshold| {
                t.condition.operator == c.operator && t.condition.threshold == c.threshold
            };
            if c.metric_id == metric && !out.iter().any(same) {
                out.push(Threshold {
                    action_id: a.action_id.clone(),
                    priority: a.priority,
                    condition: c.clone(),
                });
            }
        }
    }
    out
}

/// Why a cycle did not complete, in the console's words: a cycle with nothing to do is no
/// error ("nothing to do"); otherwise the error code, or "-".
pub fn outcome(c: &CycleBrief) -> String {
    match (c.skip_reason.as_deref(), c.error_code.as_deref()) {
        (Some("no_executable_action"), _) => "nothing to do".into(),
        (Some(r), _) => r.into(),
        (None, Some(code)) => code.into(),
        (None, None) => "-".into(),
    }
}

/// The `targets` field and value that aims at `metric`, if the tenant set one.
pub fn target_for(
    catalog: &Catalog,
    targets: &crate::contract::Targets,
    metric: &str,
) -> Option<(String, f64)> {
    let values = serde_json::to_value(targets).ok()?;
    catalog
        .targets()
        .iter()
        .filter(|t| t.metric == metric)
        .find_map(|t| Some((t.field.clone(), values.get(&t.field)?.as_f64()?)))
}

/// The tenant's view; `None` when there is no such tenant.
pub async fn tenant(
    store: &Store,
    catalog: &Catalog,
    tenant: Uuid,
) -> Result<Option<TenantView>, StoreError> {
    if !store.tenant_exists(tenant).await? {
        return Ok(None);
    }
    let cycles = store.recent_cycles(tenant, HISTORY_CYCLES).await?;
    let latest = match cycles.iter().find(|c| c.status == "completed") {
        Some(c) => Some(c.clone()),
        None => store.latest_completed_cycle(tenant).await?,
    };
    let mut actions = Vec::new();
    let mut rows = Vec::new();
    if let Some(l) = &latest {
        rows = store.cycle_actions(l.cycle_id).await?;
        let decisions = store.approval_decisions(l.cycle_id).await?;
        for a in &rows {
            let reports = store.action_reports(a.cycle_id, &a.action_id).await?;
            actions.push(ActionHistory {
                action: a.clone(),
                decisions: decisions
                    .iter()
                    .filter(|d| d.action_id == a.action_id)
                    .cloned()
                    .collect(),
                reports,
            });
        }
    }
    let priority_metric = latest.as_ref().and_then(|l| l.priority_metric.clone());
    let (series, target, thresholds) = match &priority_metric {
        None => (Vec::new(), None, Vec::new()),
        Some(m) => (
            store.metric_series(tenant, m).await?,
            target_for(catalog, &store.targets(tenant).await?, m),
            thresholds(&rows, m),
        ),
    };
    Ok(Some(TenantView {
        tenant_id: tenant,
        cycles,
        latest,
        actions,
        priority_metric,
        series,
        target,
        thresholds,
        evaluations: store.evaluations(tenant, RECENT_ROWS).await?,
        outcomes: store.outcomes(tenant, RECENT_ROWS).await?,
        campaigns: store.campaigns(tenant).await?,
    }))
}

/// `from -> to` of an action's proposed change, values as JSON.
pub fn change(a: &Action) -> String {
    format!(
        "{} {} -> {}",
        a.proposed_change.field, a.proposed_change.current_value, a.proposed_change.new_value
    )
}

/// An abort condition as a sentence fragment.
pub fn condition(c: &AbortCondition) -> String {
    format!(
        "abort if {} {} {} for {} days",
        c.metric_id,
        c.operator.as_str(),
        c.threshold,
        c.consecutive_days
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(status: &str, code: Option<&str>, skip: Option<&str>) -> CycleBrief {
        CycleBrief {
            cycle_id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            executed_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            status: status.into(),
            binding_constraint: None,
            priority_metric: None,
            confidence: None,
            diagnosis: None,
            error_code: code.map(Into::into),
            error_message: None,
            skip_reason: skip.map(Into::into),
        }
    }

    #[test]
    fn a_cycle_with_nothing_to_do_says_so_and_is_no_error() {
        let nothing = brief("skipped", None, Some("no_executable_action"));
        assert_eq!(outcome(&nothing), "nothing to do");
        let recent = brief("skipped", Some("CYCLE_TOO_RECENT"), None);
        assert_eq!(outcome(&recent), "CYCLE_TOO_RECENT");
        assert_eq!(
            outcome(&brief("failed", Some("INVALID_INPUT"), None)),
            "INVALID_INPUT"
        );
    }
}
