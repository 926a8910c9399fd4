//! Plays driven by data-health findings: safe moves that add no spend while the data is
//! unreliable.

use super::campaigns::pause_campaign;
use super::{Candidate, Ctx, Proposal, Slot};
use crate::contract::*;
use crate::kernel::data::{CampaignStats, ceil_cents, floor_cents};
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

/// Caps the largest spender's lifetime budget (of those whose budget outlasts the window) at what it has spent plus the observation window
/// at its current rate, so it cannot spend past the window on numbers that may be wrong (a
/// change only where its budget would otherwise last longer).
pub(super) fn hold_largest(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let window = c.window();
    let cap = |s: &CampaignStats| ceil_cents(s.spent + floor_cents(s.daily) * f64::from(window));
    let Some(s) = ix
        .campaigns
        .iter()
        .filter(|s| s.running && floor_cents(s.daily) > 0.0 && cap(s) < s.total)
        .max_by(|a, b| a.daily.total_cmp(&b.daily).then_with(|| b.id.cmp(a.id)))
    else {
        return;
    };
    let new = cap(s);
    let notes = format!(
        "{} is the largest spender at about {:.2}/day with {} of its {} budget left; cap \
         budget_total at {new:.2} (spent {} plus {window} days at that rate) so it cannot spend \
         past the observation window while the data is unreliable.",
        s.id,
        floor_cents(s.daily),
        num(s.budget_left()),
        num(s.total),
        num(s.spent)
    );
    let a = Proposal {
        subsystem: Subsystem::Campaigns,
        kind: ActionType::ConfigChange,
        entity: Some((EntityType::Campaign, s.id)),
        field: "budget_total",
        current: json!(s.total),
        new: json!(new),
        metric: "cac_blended",
        direction: ImpactDirection::Decrease,
        magnitude: 0.1,
        confidence: c.confidence(0.5),
        window,
        aborts: vec![c.pipeline_guard()],
        notes,
    }
    .into_action();
    out.push(Candidate::new(a, slot, s.daily));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    #[test]
    fn only_running_overspent_campaigns_are_paused() {
        let c = Tenant::new()
            .campaign("over", "running", 1_000.0, 1_500.0)
            .campaign("over_paused", "paused", 1_000.0, 1_500.0)
            .campaign("fine", "running", 10_000.0, 1_500.0)
            .checked();
        let (k, _) = formed(&c, |c, f, out, _| {
            pause_overspent(c, f, (Play::PauseOverspent, 10), out)
        });
        assert_eq!(ids(&k), ["campaigns.pause.over.status"]);
    }

    #[test]
    fn the_largest_spenders_lifetime_budget_is_capped_at_the_window() {
        let t = || {
            Tenant::new()
                .campaign("big", "running", 100_000.0, 6_000.0)
                .campaign("small", "running", 100_000.0, 3_000.0)
        };
        let hold = |t: Tenant| {
            formed(&t.checked(), |c, _, out, _| {
                hold_largest(c, (Play::HoldLargest, 60), out)
            })
            .0
        };
        let k = hold(t());
        assert_eq!(ids(&k), ["campaigns.config_change.big.budget_total"]);
        let ch = &k[0].action.proposed_change;
        // 6,000 spent plus 14 days at 200/day.
        assert_eq!(
            (&ch.current_value, &ch.new_value),
            (&json!(100_000.0), &json!(8_800.0))
        );
        // A budget that runs out within the window anyway is left alone.
        let short = Tenant::new().campaign("big", "running", 7_000.0, 6_000.0);
        assert!(hold(short).is_empty());
    }
}
