//! The pricing lever: late-stage discounts and promo codes.

use super::{Candidate, Ctx, Proposal, Slot, Trial};
use crate::contract::*;
use crate::kernel::text::{num, pct};
use serde_json::{Value, json};

/// A late-stage discount experiment at half the risk step: `economics` caps discounts to
/// protect margin, otherwise a discount is allowed to raise the close rate.
pub(super) fn discount_experiment(
    c: &Ctx,
    slot: Slot,
    economics: bool,
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    let ix = c.ix;
    let o = &ix.opps;
    if o.late_count == 0 {
        return;
    }
    let p = o.late_mean_probability;
    let volume = o.late_closing_30d as f64 / 30.0;
    let cap = (ix.risk.step * 50.0).round();
    let text = || {
        let hypothesis = if economics {
            format!(
                "Capping late-stage discounts at {cap}% protects margin without lowering the close rate."
            )
        } else {
            format!("Allowing up to {cap}% discount on late-stage deals raises their close rate.")
        };
        let evidence = format!(
            "{} late-stage opportunities (win probability >= 0.4) average a {} win probability; \
             {} close within 30 days.",
            o.late_count,
            pct(p),
            o.late_closing_30d
        );
        (hypothesis, evidence)
    };
    let trial = Trial {
        subsystem: Subsystem::Pricing,
        entity: Some((EntityType::Segment, "late_stage")),
        field: "discount_max_pct",
        new: json!(cap),
        baseline: ("win_rate", p, Some(volume)),
        volume_share: 1.0,
        text: &text,
    };
    if let Some((mut a, s)) = trial.form(c, drops) {
        if let Some(g) = ix.input.targets.gross_margin_min
            && let Some(abort) = c.abort("gross_margin", Operator::Lt, g)
        {
            a.guardrails.abort_conditions.push(abort);
        }
        out.push(Candidate::new(a, slot, p).sized(s));
    }
}

/// Stop promo-code discounting while the worst economics target is missed.
pub(super) fn promo_off(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let d = c.diag;
    let Some(t) = d
        .targets
        .iter()
        .filter(|t| {
            matches!(
                t.metric.as_str(),
                "gross_margin" | "cac_blended" | "payback_months"
            )
        })
        .max_by(|a, b| {
            a.severity
                .total_cmp(&b.severity)
                .then_with(|| b.metric.cmp(&a.metric))
        })
    else {
        return;
    };
    if t.gap <= 0.0 {
        return;
    }
    let notes = format!(
        "{} is {} against {} ({} beyond it); stop promo-code discounting while unit economics \
         recover.",
        t.metric,
        num(t.current),
        num(t.target),
        pct(t.gap)
    );
    let metric = t.metric.as_str();
    let direction = if metric == "gross_margin" {
        ImpactDirection::Increase
    } else {
        ImpactDirection::Decrease
    };
    let a = Proposal {
        subsystem: Subsystem::Pricing,
        kind: ActionType::ConfigChange,
        entity: None,
        field: "promo_code_enabled",
        current: Value::Null,
        new: json!(false),
        metric,
        direction,
        magnitude: (t.gap * 50.0).min(20.0),
        confidence: c.confidence(0.6),
        window: c.window(),
        aborts: vec![c.drop_guard("win_rate", 0.1), c.pipeline_guard()],
        notes,
    }
    .into_action();
    out.push(Candidate::new(a, slot, t.severity));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    #[test]
    fn promo_codes_go_off_only_while_an_economics_target_is_missed() {
        let off = |t: Tenant| {
            formed(&t.checked(), |c, _, out, _| {
                promo_off(c, (Play::PromoOff, 25), out)
            })
            .0
        };
        let k = off(Tenant::new().flat("cac_blended", 4_000.0));
        assert_eq!(ids(&k), ["pricing.config_change.promo_code_enabled"]);
        assert_eq!(k[0].action.target_metric, "cac_blended");
        assert!(off(Tenant::new()).is_empty());
    }

    #[test]
    fn the_discount_experiment_needs_late_stage_deals_and_guards_margin() {
        let t = || {
            (0..1200)
                .fold(Tenant::new(), |t, i| t.opportunity(0.5, i % 30 + 1))
                .flat("gross_margin", 0.75)
                .targets(|t| t.gross_margin_min = Some(0.7))
        };
        let run = |t: Tenant, economics: bool| {
            formed(&t.checked(), |c, _, out, drops| {
                discount_experiment(c, (Play::DiscountCapExperiment, 24), economics, out, drops)
            })
        };
        let (k, drops) = run(t(), true);
        assert!(drops.is_empty(), "{drops:?}");
        let a = &k[0].action;
        assert_eq!(
            a.action_id,
            "pricing.experiment.late_stage.discount_max_pct"
        );
        assert!(
            a.experiment
                .as_ref()
                .unwrap()
                .hypothesis
                .starts_with("Capping")
        );
        assert!(
            a.guardrails
                .abort_conditions
                .iter()
                .any(|c| c.metric_id == "gross_margin")
        );
        let (k, _) = run(t(), false);
        assert!(
            k[0].action
                .experiment
                .as_ref()
                .unwrap()
                .hypothesis
                .starts_with("Allowing")
        );
        // Early-stage deals only: nothing to test on.
        let early = Tenant::new().opportunity(0.2, 5);
        assert!(run(early, true).0.is_empty());
    }
}
