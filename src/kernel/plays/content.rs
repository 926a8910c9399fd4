//! The content lever: a challenger message where the money already is.

use super::campaigns::by_roas;
use super::{Candidate, Ctx, Slot, Trial, action_id, lead_baseline};
use crate::contract::*;
use crate::kernel::text::num;
use serde_json::json;

/// A message experiment on the campaign with the best revenue per spend.
pub(super) fn experiment(
    c: &Ctx,
    slot: Slot,
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    let ix = c.ix;
    let Some(best) = by_roas(ix).into_iter().next() else {
        return;
    };
    let Some(base) = lead_baseline(ix) else {
        return;
    };
    let share = if ix.revenue_total > 0.0 {
        best.revenue / ix.revenue_total
    } else {
        0.0
    };
    let cap = ix
        .input
        .guardrails
        .max_experiment_exposure_pct
        .unwrap_or(100.0);
    let t = ix.risk.treatment_pct.min(cap).min(50.0).floor();
    if t < 1.0 {
        drops.push((
            action_id(
                Subsystem::Content,
                ActionType::Experiment,
                Some(best.id),
                "variant_weights",
            ),
            "max_experiment_exposure_pct leaves no whole-percent treatment group".into(),
        ));
        return;
    }
    let text = || {
        (
            format!("A challenger message on {} lifts {}.", best.id, base.0),
            format!(
                "{} brings the most attributed revenue per spend ({}x over {}), so a better \
                 message there pays back fastest.",
                best.id,
                num(best.roas().unwrap_or(0.0)),
                c.window_words()
            ),
        )
    };
    let trial = Trial {
        subsystem: Subsystem::Content,
        entity: Some((EntityType::Campaign, best.id)),
        field: "variant_weights",
        new: json!({"control": 100.0 - t, "challenger": t}),
        baseline: base,
        volume_share: share,
        text: &text,
    };
    if let Some((a, s)) = trial.form(c, drops) {
        out.push(Candidate::new(a, slot, share).reads_attribution().sized(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    fn tenant() -> Tenant {
        Tenant::new()
            .flat("meeting_book_rate", 0.10)
            .flat("leads_created", 2_000.0)
            .campaign("c1", "running", 10_000.0, 3_000.0)
            .revenue(30_000.0, Some("c1"), Some("email"))
    }

    fn run(t: Tenant) -> (Vec<Candidate>, Vec<(String, String)>) {
        formed(&t.checked(), |c, _, out, drops| {
            experiment(c, (Play::ContentExperiment, 23), out, drops)
        })
    }

    #[test]
    fn a_challenger_message_on_the_best_campaign() {
        let (k, drops) = run(tenant());
        assert!(drops.is_empty(), "{drops:?}");
        assert_eq!(ids(&k), ["content.experiment.c1.variant_weights"]);
        assert_eq!(
            k[0].action.proposed_change.new_value,
            json!({"control": 80.0, "challenger": 20.0})
        );
    }

    #[test]
    fn an_exposure_cap_under_one_percent_leaves_no_treatment_group() {
        let (k, drops) = run(tenant().guardrails(|g| g.max_experiment_exposure_pct = Some(0.5)));
        assert!(k.is_empty());
        assert_eq!(drops[0].0, "content.experiment.c1.variant_weights");
    }
}
