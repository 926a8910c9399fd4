//! Plays driven by data-health findings: safe moves that add no spend while the data is
//! unreliable.

use super::campaigns::{pause_campaign, set_budget};
use super::{Candidate, Ctx, Slot};
use crate::contract::*;
use crate::kernel::data::floor_cents;
use crate::kernel::health::{Finding, Kind};
use crate::kernel::text::num;

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
    let a = set_budget(
        c,
        (EntityType::Campaign, s.id),
        current,
        current,
        0.1,
        c.confidence(0.5),
        notes,
    );
    out.push(Candidate::new(a, slot, s.daily));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;
    use serde_json::json;

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
    fn the_largest_spender_under_the_cap_is_pinned_at_its_rate() {
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
        assert_eq!(ids(&k), ["campaigns.config_change.big.budget_daily"]);
        let ch = &k[0].action.proposed_change;
        assert_eq!(
            (&ch.current_value, &ch.new_value),
            (&json!(200.0), &json!(200.0))
        );
        // 200/day does not fit under a 150 cap: the executor would refuse it.
        let capped = hold(t().guardrails(|g| g.max_daily_spend = Some(150.0)));
        assert_eq!(ids(&capped), ["campaigns.config_change.small.budget_daily"]);
    }
}
