//! Plays driven by data-health findings: safe moves that add no spend while the data is
//! unreliable.

use super::campaigns::pause_campaign;
use super::{Candidate, Ctx, Proposal, Slot};
use crate::contract::*;
use crate::kernel::data::floor_cents;
use crate::kernel::health::{Finding, Kind};
use crate::kernel::text::num;
use serde_json::json;

/// Stops running campaigns that spent past their budget (at most 3 per finding).
pub(super) fn pause_overspent(c: &Ctx, findings: &[Finding], slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    for f in findings.iter().filter(|f| f.kind == Kind::Overspend) {
        for id in f.campaigns.iter().take(3) {
            let Some(s) = ix.campaign(id).filter(|s| s.running) else {
                continue;
            };
            let notes = format!(
                "{} has spent {} of its {} budget; pause it until spend is reconciled.",
                s.id,
                num(s.spent),
                num(s.total)
            );
            let magnitude = if ix.daily_total > 0.0 {
                s.daily / ix.daily_total * 100.0
            } else {
                1.0
            };
            let a = pause_campaign(c, s, magnitude, 0.9, notes);
            out.push(Candidate::new(a, slot, s.spent - s.total));
        }
    }
}

/// Pins the largest spender's daily budget at its current rate.
pub(super) fn hold_largest(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let Some(s) = ix
        .campaigns
        .iter()
        .filter(|s| s.running && s.daily > 0.0)
        // The executor rejects a daily budget above the cap, so hold only what fits under it.
        .filter(|s| {
            ix.input
                .guardrails
                .max_daily_spend
                .is_none_or(|cap| floor_cents(s.daily) <= cap)
        })
        .max_by(|a, b| a.daily.total_cmp(&b.daily).then_with(|| b.id.cmp(a.id)))
    else {
        return;
    };
    let current = floor_cents(s.daily);
    if current <= 0.0 {
        return;
    }
    let notes = format!(
        "{} is the largest spender at about {current:.2}/day; pin its daily budget at that level \
         so nothing adds spend while the data is unreliable.",
        s.id
    );
    let a = Proposal {
        subsystem: Subsystem::Campaigns,
        kind: ActionType::ConfigChange,
        entity: Some((EntityType::Campaign, s.id)),
        field: "budget_daily",
        current: json!(current),
        new: json!(current),
        metric: "cac_blended",
        direction: ImpactDirection::Decrease,
        magnitude: 0.1,
        confidence: c.confidence(0.5),
        window: c.window(),
        aborts: vec![c.pipeline_guard()],
        notes,
    }
    .into_action();
    out.push(Candidate::new(a, slot, s.daily));
}
