//! A held action at a glance: the lever's value now next to the proposed one, the step in %
//! and (for a budget) in money, the tenant's spend headroom before and after, and each abort
//! condition against its metric's latest value. Pure: the store gathers `GlanceFacts`.

use crate::contract::{AbortCondition, Action, Operator};
use crate::store::GlanceFacts;
use chrono::NaiveDate;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Glance {
    pub field: String,
    /// The lever's value now: its known state when an executor applied it, else the value
    /// the kernel read from the tenant's data.
    pub current: Value,
    /// Where `current` comes from: `lever state since …` or `tenant data`.
    pub current_from: String,
    pub proposed: Value,
    /// (proposed − current) / current × 100, when both are numbers and current ≠ 0.
    pub change_pct: Option<f64>,
    /// proposed − current, for a budget field.
    pub money: Option<f64>,
    /// The tenant's estimated daily spend (running campaigns: spent / days running).
    pub daily_spend: f64,
    /// `max_daily_spend − daily_spend` now, and after this action adds its daily spend.
    pub headroom_before: Option<f64>,
    pub headroom_after: Option<f64>,
    pub conditions: Vec<ConditionGlance>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConditionGlance {
    pub condition: AbortCondition,
    /// The metric's newest day and value.
    pub latest: Option<(NaiveDate, f64)>,
    /// How far the latest value is from tripping the condition (positive: still safe).
    pub distance: Option<f64>,
}

fn running(status: &str) -> bool {
    matches!(status, "running" | "active")
}

/// Daily spend of the running campaigns, each `spent / days` from its start to `today` (or
/// its end date, if earlier), at least one day.
pub fn daily_spend(facts: &GlanceFacts, today: NaiveDate) -> f64 {
    facts
        .campaigns
        .iter()
        .filter(|c| running(&c.status) && c.start <= today)
        .map(|c| {
            let until = c.end.map_or(today, |e| e.min(today));
            let days = (until - c.start).num_days().max(1) as f64;
            c.spent / days
        })
        .sum()
}

/// Distance of `value` from tripping `c`: how much it may still move the wrong way.
pub fn distance(c: &AbortCondition, value: f64) -> f64 {
    match c.operator {
        Operator::Gt | Operator::Ge => c.threshold - value,
        Operator::Lt | Operator::Le => value - c.threshold,
    }
}

pub fn glance(action: &Action, facts: &GlanceFacts, today: NaiveDate) -> Glance {
    let pc = &action.proposed_change;
    let entity = action.target_entity.as_ref().map(|e| e.id.as_str());
    let known = facts.levers.get(action.owner_subsystem, entity, &pc.field);
    let (current, current_from) = match known {
        Some(k) => (k.value.clone(), format!("lever state since {}", k.since)),
        None => (pc.current_value.clone(), "tenant data".to_owned()),
    };
    let (cur, new) = (current.as_f64(), pc.new_value.as_f64());
    let change_pct = match (cur, new) {
        (Some(c), Some(n)) if c != 0.0 => Some((n - c) / c * 100.0),
        _ => None,
    };
    let budget = pc.field.starts_with("budget");
    let money = match (cur, new) {
        (Some(c), Some(n)) if budget => Some(n - c),
        _ => None,
    };
    // A daily budget adds its step per day; otherwise the action's own spend cap, if any.
    let added = match (pc.field.as_str(), money) {
        ("budget_daily", Some(m)) => m.max(0.0),
        _ => action.guardrails.max_additional_spend.unwrap_or(0.0),
    };
    let spend = daily_spend(facts, today);
    let headroom_before = facts.max_daily_spend.map(|cap| cap - spend);
    Glance {
        field: pc.field.clone(),
        current,
        current_from,
        proposed: pc.new_value.clone(),
        change_pct,
        money,
        daily_spend: spend,
        headroom_before,
        headroom_after: headroom_before.map(|h| h - added),
        conditions: action
            .guardrails
            .abort_conditions
            .iter()
            .map(|c| {
                let latest = facts.latest.get(&c.metric_id).copied();
                ConditionGlance {
                    condition: c.clone(),
                    latest,
                    distance: latest.map(|(_, v)| distance(c, v)),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CampaignSpend;
    use serde_json::json;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn raise() -> Action {
        serde_json::from_value(json!({
            "action_id": "campaigns.scale.cmp_002.budget_daily", "priority": 1,
            "owner_subsystem": "campaigns", "type": "scale", "target_metric": "pipeline_total",
            "target_entity": {"type": "campaign", "id": "cmp_002"},
            "proposed_change": {"field": "budget_daily", "current_value": 500.0, "new_value": 600.0},
            "guardrails": {"abort_conditions": [
                {"metric_id": "cac_blended", "operator": ">", "threshold": 3500.0, "consecutive_days": 3},
                {"metric_id": "pipeline_total", "operator": "<", "threshold": 1000.0, "consecutive_days": 3}
            ], "max_additional_spend": 100.0},
            "observation_window_days": 14,
            "expected_impact": {"metric_id": "pipeline_total", "direction": "increase",
                                "magnitude_pct": 5.0, "confidence": 0.5},
            "notes_for_humans": "n"
        }))
        .unwrap()
    }

    #[test]
    fn a_budget_raise_shows_its_step_headroom_and_distances() {
        let facts = GlanceFacts {
            max_daily_spend: Some(1000.0),
            campaigns: vec![
                CampaignSpend {
                    status: "running".into(),
                    spent: 3000.0,
                    start: day("2026-11-01"),
                    end: None,
                },
                CampaignSpend {
                    status: "paused".into(),
                    spent: 9999.0,
                    start: day("2026-11-01"),
                    end: None,
                },
            ],
            latest: [
                ("cac_blended".to_owned(), (day("2026-11-10"), 3200.0)),
                ("pipeline_total".to_owned(), (day("2026-11-10"), 1500.0)),
            ]
            .into_iter()
            .collect(),
            levers: Default::default(),
        };
        let g = glance(&raise(), &facts, day("2026-11-11"));
        assert_eq!(g.current, json!(500.0));
        assert_eq!(g.current_from, "tenant data");
        assert_eq!(g.change_pct, Some(20.0));
        assert_eq!(g.money, Some(100.0));
        assert_eq!(g.daily_spend, 300.0);
        assert_eq!(g.headroom_before, Some(700.0));
        assert_eq!(g.headroom_after, Some(600.0));
        assert_eq!(g.conditions[0].distance, Some(300.0));
        assert_eq!(g.conditions[1].distance, Some(500.0));
    }
}
