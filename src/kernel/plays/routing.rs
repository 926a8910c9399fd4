//! The routing side of the `sequences` lever.

use super::{Candidate, Ctx, Proposal, Slot};
use crate::contract::*;
use crate::kernel::text::{num, pct};
use serde_json::{Value, json};

/// Round-robin lead routing when speed to lead is slipping (rising over the window).
pub(super) fn round_robin(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let Some(speed) = ix.latest_value("speed_to_lead_hours") else {
        return;
    };
    let trend = ix.trend("speed_to_lead_hours").unwrap_or(0.0);
    // Round robin re-routes the whole floor: only for a material, significant slip.
    if speed <= 1.0 || trend < crate::kernel::diagnose::MATERIAL_MOVE {
        return;
    }
    let notes = format!(
        "Speed to lead rose {} over {} to {} hours; route new leads round-robin so no rep's \
         queue holds them.",
        pct(trend),
        c.window_words(),
        num(speed)
    );
    let a = Proposal {
        subsystem: Subsystem::Routing,
        kind: ActionType::ConfigChange,
        entity: None,
        field: "round_robin_enabled",
        current: Value::Null,
        new: json!(true),
        metric: "speed_to_lead_hours",
        direction: ImpactDirection::Decrease,
        magnitude: trend * 100.0,
        confidence: c.confidence(0.6),
        window: c.window(),
        aborts: vec![
            c.rise_guard("speed_to_lead_hours", 0.25),
            c.pipeline_guard(),
        ],
        notes,
    }
    .into_action();
    out.push(Candidate::new(a, slot, trend));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    fn rr(t: Tenant) -> Vec<Candidate> {
        formed(&t.checked(), |c, _, out, _| {
            round_robin(c, (Play::RoundRobin, 31), out)
        })
        .0
    }

    #[test]
    fn round_robin_only_when_speed_to_lead_is_slipping() {
        let rising = rr(Tenant::new().series("speed_to_lead_hours", |i| 4.0 + i as f64 / 10.0));
        assert_eq!(ids(&rising), ["routing.config_change.round_robin_enabled"]);
        assert!(
            rr(Tenant::new().series("speed_to_lead_hours", |i| 8.0 - i as f64 / 10.0)).is_empty()
        );
        assert!(rr(Tenant::new().flat("speed_to_lead_hours", 6.0)).is_empty());
    }
}
