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
    let text = || {
        (
            format!(
                "Shortening the delay between sequence touches to 1 day lifts {}.",
                base.0
            ),
            format!(
                "{} is {} ({} {} over {}){}.",
                base.0,
                num(base.1),
                if trend < 0.0 { "down" } else { "up" },
                pct(trend.abs()),
                c.window_words(),
                base.2
                    .map(|v| format!(
                        ", with about {} {} a day entering the sequence",
                        num(v),
                        super::sample_unit(base.0)
                    ))
                    .unwrap_or_default()
            ),
        )
    };
    let trial = Trial {
        subsystem: Subsystem::Crm,
        entity: None,
        field: "sequence_delay_days",
        new: json!(1),
        baseline: base,
        volume_share: 1.0,
        text: &text,
    };
    if let Some((a, s)) = trial.form(c, drops) {
        out.push(Candidate::new(a, slot, base.1).sized(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    fn sla(t: Tenant) -> Vec<Candidate> {
        formed(&t.checked(), |c, _, out, _| {
            follow_up_sla(c, (Play::FollowUpSla, 20), out)
        })
        .0
    }

    #[test]
    fn the_sla_is_one_risk_step_under_speed_to_lead_in_whole_hours() {
        let k = sla(Tenant::new().flat("speed_to_lead_hours", 6.6));
        assert_eq!(ids(&k), ["crm.config_change.follow_up_sla_hours"]);
        // floor(6.6 x 0.8) = 5.
        assert_eq!(k[0].action.proposed_change.new_value, json!(5));
        assert!(sla(Tenant::new().flat("speed_to_lead_hours", 1.0)).is_empty());
        assert!(sla(Tenant::new()).is_empty());
    }

    #[test]
    fn the_sequence_experiment_is_sized_on_the_lead_rate() {
        // 400 leads a day at a 0.10 meeting rate: 3,841 per arm... reached in days, not months.
        let c = Tenant::new()
            .flat("meeting_book_rate", 0.10)
            .flat("leads_created", 400.0)
            .checked();
        let (k, drops) = formed(&c, |c, _, out, drops| {
            sequence_experiment(c, (Play::SequenceExperiment, 21), out, drops)
        });
        assert!(drops.is_empty(), "{drops:?}");
        let e = k[0].action.experiment.as_ref().unwrap();
        assert_eq!(e.success_metric, "meeting_book_rate");
        assert_eq!((e.min_sample_size, e.treatment_group_pct), (3841, 20.0));
    }
}
