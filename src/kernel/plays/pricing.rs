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
    let evidence = format!(
        "{} late-stage opportunities (win probability >= 0.4) average a {} win probability; {} \
         close within 30 days.",
        o.late_count,
        pct(p),
        o.late_closing_30d
    );
    let hypothesis = if economics {
        format!(
            "Capping late-stage discounts at {cap}% protects margin without lowering the close rate."
        )
    } else {
        format!("Allowing up to {cap}% discount on late-stage deals raises their close rate.")
    };
    let trial = Trial {
        subsystem: Subsystem::Pricing,
        entity: Some((EntityType::Segment, "late_stage")),
        field: "discount_max_pct",
        new: json!(cap),
        baseline: ("win_rate", p, Some(volume)),
        volume_share: 1.0,
        hypothesis,
        evidence,
    };
    if let Some((mut a, s)) = trial.form(c, drops) {
        if let Some(g) = ix.input.targets.gross_margin_min
            && let Some(abort) = c.abort("gross_margin", Operator::Lt, g)
        {
            a.guardrails.abort_conditions.push(abort);
        }
        let mut k = Candidate::new(a, slot, p);
        k.sizing = Some(s);
        out.push(k);
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
