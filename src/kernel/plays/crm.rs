//! The CRM side of the `sequences` lever: work leads faster, touch them sooner.

use super::{Candidate, Ctx, Proposal, Slot, Trial, lead_baseline};
use crate::contract::*;
use crate::kernel::text::{num, pct};
use serde_json::{Value, json};

/// A follow-up SLA one risk step under today's speed to lead (in whole hours, at least 1).
pub(super) fn follow_up_sla(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let Some(speed) = ix.latest_value("speed_to_lead_hours") else {
        return;
    };
    let new = (speed * (1.0 - ix.risk.step)).floor().clamp(1.0, 168.0);
    if speed <= 1.0 || new >= speed {
        return;
    }
    let trend = ix.trend("speed_to_lead_hours").unwrap_or(0.0);
    let notes = format!(
        "Speed to lead is {} hours ({} {} over {}); set the follow-up SLA to {} hours so new \
         leads are worked faster.",
        num(speed),
        if trend > 0.0 { "up" } else { "down" },
        pct(trend.abs()),
        c.window_words(),
        num(new)
    );
    let a = Proposal {
        subsystem: Subsystem::Crm,
        kind: ActionType::ConfigChange,
        entity: None,
        field: "follow_up_sla_hours",
        current: Value::Null,
        new: json!(new as i64),
        metric: "speed_to_lead_hours",
        direction: ImpactDirection::Decrease,
        magnitude: (1.0 - new / speed) * 100.0,
        confidence: c.confidence(0.7),
        window: c.window(),
        aborts: vec![
            c.rise_guard("speed_to_lead_hours", 0.25),
            c.drop_guard("win_rate", 0.1),
            c.pipeline_guard(),
        ],
        notes,
    }
    .into_action();
    out.push(Candidate::new(a, slot, trend));
}

/// A shorter delay between sequence touches, sized on the tenant's lead-level rate.
pub(super) fn sequence_experiment(
    c: &Ctx,
    slot: Slot,
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    let ix = c.ix;
    let Some(base) = lead_baseline(ix) else {
        return;
    };
    let trend = ix.trend(base.0).unwrap_or(0.0);
    let evidence = format!(
        "{} is {} ({} {} over {}){}.",
        base.0,
        num(base.1),
        if trend < 0.0 { "down" } else { "up" },
        pct(trend.abs()),
        c.window_words(),
        base.2
            .map(|v| format!(", with about {} units a day entering the sequence", num(v)))
            .unwrap_or_default()
    );
    let trial = Trial {
        subsystem: Subsystem::Crm,
        entity: None,
        field: "sequence_delay_days",
        new: json!(1),
        baseline: base,
        volume_share: 1.0,
        hypothesis: format!(
            "Shortening the delay between sequence touches to 1 day lifts {}.",
            base.0
        ),
        evidence,
    };
    if let Some((a, s)) = trial.form(c, drops) {
        let mut k = Candidate::new(a, slot, base.1);
        k.sizing = Some(s);
        out.push(k);
    }
}
