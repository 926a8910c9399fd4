//! The `campaigns` and `channels` levers: scale what returns its spend, pause or cut what does
//! not, and test the strongest channel on a new audience.

use super::{Candidate, Ctx, Proposal, Slot, Trial, lead_baseline};
use crate::contract::*;
use crate::kernel::data::{CampaignStats, Index, ceil_cents, floor_cents};
use crate::kernel::text::{num, pct};
use serde_json::json;

/// Pausing a running campaign: lowers blended CAC by `magnitude` percent, guarded by pipeline.
/// When `pause` is blocked, the next safe move for the same intent: a budget cut by the step.
pub(super) fn pause_campaign(
    c: &Ctx,
    s: &CampaignStats,
    magnitude: f64,
    confidence_factor: f64,
    notes: String,
) -> Action {
    if c.ix.input.guardrails.is_blocked(ActionType::Pause) {
        let step = c.ix.risk.step;
        let current = floor_cents(s.daily);
        let new = ceil_cents(current * (1.0 - step));
        return set_budget(
            c,
            (EntityType::Campaign, s.id),
            current,
            new,
            magnitude * step,
            c.confidence(confidence_factor * 0.9),
            format!(
                "{notes} Pausing is blocked (blocked_actions), so cut its daily budget from \
                 {current:.2} to {new:.2} (-{}, the {} risk step) instead.",
                pct(step),
                c.ix.risk.level
            ),
        );
    }
    Proposal {
        subsystem: Subsystem::Campaigns,
        kind: ActionType::Pause,
        entity: Some((EntityType::Campaign, s.id)),
        field: "status",
        current: json!("running"),
        new: json!("paused"),
        metric: "cac_blended",
        direction: ImpactDirection::Decrease,
        magnitude,
        confidence: c.confidence(confidence_factor),
        window: c.window(),
        aborts: vec![c.pipeline_guard()],
        notes,
    }
    .into_action()
}

/// Raising a campaign's or channel's daily budget: more pipeline, guarded by CAC and pipeline.
fn raise_budget(
    c: &Ctx,
    entity: (EntityType, &str),
    current: f64,
    new: f64,
    magnitude: f64,
    confidence: f64,
    notes: String,
) -> Action {
    Proposal {
        subsystem: Subsystem::Campaigns,
        kind: ActionType::Scale,
        entity: Some(entity),
        field: "budget_daily",
        current: json!(current),
        new: json!(new),
        metric: "pipeline_total",
        direction: ImpactDirection::Increase,
        magnitude,
        confidence,
        window: c.window(),
        aborts: vec![c.cac_guard(), c.pipeline_guard()],
        notes,
    }
    .into_action()
}

/// Setting a daily budget at or below today's: lower CAC, guarded by pipeline.
pub(super) fn set_budget(
    c: &Ctx,
    entity: (EntityType, &str),
    current: f64,
    new: f64,
    magnitude: f64,
    confidence: f64,
    notes: String,
) -> Action {
    Proposal {
        subsystem: Subsystem::Campaigns,
        kind: ActionType::ConfigChange,
        entity: Some(entity),
        field: "budget_daily",
        current: json!(current),
        new: json!(new),
        metric: "cac_blended",
        direction: ImpactDirection::Decrease,
        magnitude,
        confidence,
        window: c.window(),
        aborts: vec![c.pipeline_guard()],
        notes,
    }
    .into_action()
}

/// The campaign's share of today's total daily budget (0 when there is none).
fn daily_share(ix: &Index, s: &CampaignStats) -> f64 {
    if ix.daily_total > 0.0 {
        s.daily / ix.daily_total
    } else {
        0.0
    }
}

/// Running campaigns with attributed revenue and budget left, best revenue per spend first.
pub(super) fn by_roas<'x, 'a>(ix: &'x Index<'a>) -> Vec<&'x CampaignStats<'a>> {
    let mut v: Vec<&CampaignStats> = ix
        .campaigns
        .iter()
        .filter(|c| c.running && c.revenue > 0.0 && c.roas().is_some() && c.budget_left() > 0.0)
        .collect();
    v.sort_by(|a, b| {
        b.roas()
            .unwrap_or(0.0)
            .total_cmp(&a.roas().unwrap_or(0.0))
            .then_with(|| a.id.cmp(b.id))
    });
    v
}

fn running_count(ix: &Index) -> usize {
    ix.campaigns.iter().filter(|c| c.running).count()
}

/// The highest daily budget the budget left can pay for over the observation window.
fn spendable_daily(c: &Ctx, left: f64) -> f64 {
    floor_cents(left.max(0.0) / f64::from(c.window().max(1)))
}

/// Raises the daily budget of the `nth` (0: best, 1: second best) campaign by revenue per spend
/// among those whose budget left can pay for a higher rate over the observation window.
pub(super) fn scale(
    c: &Ctx,
    nth: usize,
    slot: Slot,
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    let ix = c.ix;
    let ranked = by_roas(ix);
    let step = ix.risk.step;
    let mut eligible = 0;
    let mut pick = None;
    for s in &ranked {
        let current = floor_cents(s.daily);
        let room = spendable_daily(c, s.budget_left());
        // Principle 2: never add spend in a channel whose own CAC is over cac_max.
        if let Some((ch, cac, max)) = ix.campaign_over_cac(s) {
            if eligible == nth {
                drops.push((
                    super::action_id(
                        Subsystem::Campaigns,
                        ActionType::Scale,
                        Some(s.id),
                        "budget_daily",
                    ),
                    format!(
                        "channel cac: {} is in {ch}, whose CAC {} is over cac_max {}                          (blended {}); no spend is added there",
                        s.id,
                        num(cac),
                        num(max),
                        ix.latest_value("cac_blended").map_or("-".into(), num)
                    ),
                ));
            }
            continue;
        }
        if current > 0.0 && room > current {
            if eligible == nth {
                pick = Some((*s, current, room));
                break;
            }
            eligible += 1;
        } else if eligible == nth && current > 0.0 {
            // Listed once: by the play whose rank it would have taken.
            drops.push((
                super::action_id(
                    Subsystem::Campaigns,
                    ActionType::Scale,
                    Some(s.id),
                    "budget_daily",
                ),
                format!(
                    "eligibility: {} has {} of its {} budget left, {room:.2}/day over the \
                     {}-day observation window, not above its current {current:.2}/day; no raise",
                    s.id,
                    num(s.budget_left()),
                    num(s.total),
                    c.window()
                ),
            ));
        }
    }
    let Some((s, current, room)) = pick else {
        return;
    };
    let stepped = floor_cents(current * (1.0 + step));
    let new = stepped.min(room);
    let capped = if new < stepped {
        format!(
            " It is held to {new:.2}/day so the {} of budget left lasts the {}-day observation \
             window.",
            num(s.budget_left()),
            c.window()
        )
    } else {
        String::new()
    };
    let roas = s.roas().unwrap_or(0.0);
    let share = if ix.revenue_total > 0.0 {
        s.revenue / ix.revenue_total
    } else {
        0.0
    };
    let notes = format!(
        "{} returned {}x its estimated spend over {} ({} {} on {}), the {} of {} \
         running campaigns with attributed revenue and budget left; raise its daily budget \
         from {current:.2} to {new:.2} (+{}, the {} risk step).{capped}",
        s.id,
        num(roas),
        c.window_words(),
        num(s.revenue),
        net_words(s),
        num(s.window_spend),
        if nth == 0 { "best" } else { "second best" },
        ranked.len(),
        pct(step),
        ix.risk.level
    );
    let action = raise_budget(
        c,
        (EntityType::Campaign, s.id),
        current,
        new,
        share * step * 100.0,
        c.confidence(0.9),
        notes,
    );
    out.push(
        Candidate::new(action, slot, roas)
            .adds(new - current)
            .reads_attribution(),
    );
}

/// "attributed", or for a campaign with refunds, churn or expansion revenue the net figure
/// with the gross beside it (principle 3: the evidence quotes net numbers and says so).
fn net_words(s: &CampaignStats) -> String {
    if s.netted() {
        format!(
            "net new-business revenue attributed (gross {} before refunds, churn and expansion)",
            num(s.gross)
        )
    } else {
        "attributed".into()
    }
}

/// Principle 2: running campaigns in a channel whose own CAC is over `cac_max`, cut by the
/// risk step, largest daily spend first (at most 2).
pub(super) fn cut_over_cac(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let mut over: Vec<(&CampaignStats, &str, f64, f64)> = ix
        .campaigns
        .iter()
        .filter(|s| s.running && floor_cents(s.daily) > 0.0)
        .filter_map(|s| ix.campaign_over_cac(s).map(|(ch, v, m)| (s, ch, v, m)))
        .collect();
    over.sort_by(|a, b| {
        b.0.daily
            .total_cmp(&a.0.daily)
            .then_with(|| a.0.id.cmp(b.0.id))
    });
    let step = ix.risk.step;
    for (s, ch, cac, max) in over.into_iter().take(2) {
        let current = floor_cents(s.daily);
        let new = ceil_cents(current * (1.0 - step));
        let action = set_budget(
            c,
            (EntityType::Campaign, s.id),
            current,
            new,
            daily_share(ix, s) * step * 100.0,
            c.confidence(0.8),
            format!(
                "{} runs in {ch}, whose CAC is {} against cac_max {} ({} over) while blended \
                 CAC is {}: the blend hides it. Cut its daily budget from {current:.2} to \
                 {new:.2} (-{}, the {} risk step).",
                s.id,
                num(cac),
                num(max),
                pct(cac / max - 1.0),
                ix.latest_value("cac_blended").map_or("-".into(), num),
                pct(step),
                ix.risk.level
            ),
        );
        out.push(Candidate::new(action, slot, cac / max));
    }
}

/// Running spend above `max_daily_spend`: the cuts of `Index::cap_cuts`, ranked first.
pub(super) fn cut_to_cap(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let cap = ix.input.guardrails.max_daily_spend.unwrap_or(0.0);
    for k in ix.cap_cuts() {
        let s = k.campaign;
        let roas = s.roas().unwrap_or(0.0);
        let why = format!(
            "Running campaigns spend {}/day, {} over max_daily_spend {}: cut back under the cap \
             first, worst return first. {} returned {}x its estimated spend over {} ({} \
             attributed on {})",
            num(ix.daily_total),
            num(ix.daily_total - cap),
            num(cap),
            s.id,
            num(roas),
            c.window_words(),
            num(s.revenue),
            num(s.window_spend)
        );
        let share = daily_share(ix, s) * 100.0;
        let action = match k.new {
            None => pause_campaign(c, s, share, 0.9, format!("{why}; pause it.")),
            Some(new) => set_budget(
                c,
                (EntityType::Campaign, s.id),
                k.current,
                new,
                share * (1.0 - new / k.current),
                c.confidence(0.85),
                format!(
                    "{why}; cut its daily budget from {:.2} to {new:.2}.",
                    k.current
                ),
            ),
        };
        out.push(Candidate::new(action, slot, -roas));
    }
}

/// Running campaigns that spent materially in the window with nothing attributed.
pub(super) fn pause_wasted(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let mut spends: Vec<f64> = ix
        .campaigns
        .iter()
        .filter(|s| s.running && s.window_spend > 0.0)
        .map(|s| s.window_spend)
        .collect();
    if spends.is_empty() {
        return;
    }
    spends.sort_by(f64::total_cmp);
    let median = spends[spends.len() / 2];
    let material = (median * 0.5).max(1.0);
    let mut waste: Vec<&CampaignStats> = ix
        .campaigns
        .iter()
        .filter(|s| s.running && s.revenue <= 0.0 && s.window_spend >= material)
        .collect();
    waste.sort_by(|a, b| {
        b.window_spend
            .total_cmp(&a.window_spend)
            .then_with(|| a.id.cmp(b.id))
    });
    let others = running_count(ix).saturating_sub(1);
    for s in waste.into_iter().take(2) {
        let notes = format!(
            "{} spent an estimated {} over {} ({}/day) with no attributed revenue, while {} \
             other running campaign(s) brought {} attributed; pause it.",
            s.id,
            num(s.window_spend),
            c.window_words(),
            num(s.daily),
            others,
            num(ix.revenue_total - ix.revenue_unattributed)
        );
        let action = pause_campaign(c, s, daily_share(ix, s) * 100.0, 0.85, notes);
        out.push(Candidate::new(action, slot, s.window_spend).reads_attribution());
    }
}

/// Economics: pauses or cuts the `nth` (0: worst, 1: second worst) running campaign by cost
/// per attributed revenue.
pub(super) fn cut(c: &Ctx, nth: usize, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let mut v: Vec<&CampaignStats> = ix
        .campaigns
        .iter()
        .filter(|s| s.running && s.window_spend > 0.0 && s.daily > 0.0)
        .collect();
    let cost = |s: &CampaignStats| {
        if s.revenue > 0.0 {
            s.window_spend / s.revenue
        } else {
            f64::INFINITY
        }
    };
    v.sort_by(|a, b| {
        cost(b)
            .total_cmp(&cost(a))
            .then_with(|| b.window_spend.total_cmp(&a.window_spend))
            .then_with(|| a.id.cmp(b.id))
    });
    let n = v.len();
    let Some(s) = v.get(nth) else {
        return;
    };
    let step = ix.risk.step;
    let roas = s.roas().unwrap_or(0.0);
    let place = if nth == 0 { "worst" } else { "second worst" };
    let evidence = if s.revenue > 0.0 {
        format!(
            "{} returned {}x its estimated spend over {} ({} attributed on {}), the {} cost \
             per attributed revenue of {} running campaigns",
            s.id,
            num(roas),
            c.window_words(),
            num(s.revenue),
            num(s.window_spend),
            place,
            n
        )
    } else {
        format!(
            "{} brought no attributed revenue on an estimated {} of spend over {}, the {} \
             cost per attributed revenue of {} running campaigns",
            s.id,
            num(s.window_spend),
            c.window_words(),
            place,
            n
        )
    };
    let share = daily_share(ix, s);
    let current = floor_cents(s.daily);
    let cut = ceil_cents(current * (1.0 - step));
    // A cut that cannot get under max_daily_spend is not executable: pause instead.
    let over_cap = ix
        .input
        .guardrails
        .max_daily_spend
        .is_some_and(|cap| cut > cap);
    let action = if roas < 1.0 || over_cap {
        pause_campaign(
            c,
            s,
            share * 100.0,
            0.85,
            if over_cap && roas >= 1.0 {
                format!(
                    "{evidence}; even a {} cut leaves it above max_daily_spend, so pause it.",
                    pct(step)
                )
            } else {
                format!("{evidence}; it does not return its spend, so pause it.")
            },
        )
    } else {
        let new = cut;
        if new <= 0.0 {
            return;
        }
        set_budget(
            c,
            (EntityType::Campaign, s.id),
            current,
            new,
            share * step * 100.0,
            c.confidence(0.8),
            format!(
                "{evidence}; cut its daily budget from {current:.2} to {new:.2} (-{}, the {} \
                 risk step).",
                pct(step),
                ix.risk.level
            ),
        )
    };
    out.push(Candidate::new(action, slot, -cost(s).min(1e12)).reads_attribution());
}

/// Channel with the best attributed revenue per spend (by revenue when spend is unknown):
/// (name, revenue per spend, share of attributed revenue).
fn strongest_channel<'x>(ix: &'x Index) -> Option<(&'x str, f64, f64)> {
    let rev_total: f64 = ix.channels.values().map(|c| c.revenue.max(0.0)).sum();
    ix.channels
        .iter()
        .filter(|(_, s)| s.revenue > 0.0)
        .map(|(n, s)| {
            let eff = if s.window_spend > 0.0 {
                s.revenue / s.window_spend
            } else {
                0.0
            };
            (*n, eff, s.revenue / rev_total.max(1e-9))
        })
        .max_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then_with(|| a.2.total_cmp(&b.2))
                .then_with(|| b.0.cmp(a.0))
        })
}

pub(super) fn channel_experiment(
    c: &Ctx,
    slot: Slot,
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    let ix = c.ix;
    let Some((ch, eff, share)) = strongest_channel(ix) else {
        return;
    };
    let Some(base) = lead_baseline(ix) else {
        return;
    };
    let st = &ix.channels[ch];
    let text = || {
        (
            format!(
                "Extending {ch} to a lookalike audience of closed-won accounts raises {} without lowering efficiency.",
                base.0
            ),
            format!(
                "{ch} is the strongest channel: {} attributed over {} ({} of attributed revenue{}).",
                num(st.revenue),
                c.window_words(),
                pct(share),
                if eff > 0.0 {
                    format!(", {}x its estimated spend", num(eff))
                } else {
                    String::new()
                }
            ),
        )
    };
    let trial = Trial {
        subsystem: Subsystem::Campaigns,
        entity: Some((EntityType::Channel, ch)),
        field: "target_segment",
        new: json!({"channel": ch, "audience": "lookalike_of_closed_won"}),
        baseline: base,
        volume_share: share,
        text: &text,
    };
    if let Some((a, s)) = trial.form(c, drops) {
        out.push(Candidate::new(a, slot, eff).reads_attribution().sized(s));
    }
}

/// Without the `campaigns` lever, the strongest channel's budget is the spend lever.
pub(super) fn channel_scale(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    if ix
        .input
        .guardrails
        .allowed_levers
        .contains(&Lever::Campaigns)
    {
        return;
    }
    let Some((ch, eff, _)) = strongest_channel(ix) else {
        return;
    };
    let st = &ix.channels[ch];
    let current = floor_cents(st.daily);
    // Principle 2: no spend added to a channel whose own CAC is over cac_max.
    if current <= 0.0 || eff <= 0.0 || ix.channel_over_cac(ch).is_some() {
        return;
    }
    let step = ix.risk.step;
    let new = floor_cents(current * (1.0 + step)).min(spendable_daily(c, st.left));
    if new <= current {
        return;
    }
    let notes = format!(
        "{ch} returned {}x its estimated spend over {} across {} campaign(s), the best channel; \
         raise its daily budget from {current:.2} to {new:.2} (+{}, the {} risk step).",
        num(eff),
        c.window_words(),
        st.campaigns,
        pct(step),
        ix.risk.level
    );
    let a = raise_budget(
        c,
        (EntityType::Channel, ch),
        current,
        new,
        step * 100.0 * 0.5,
        c.confidence(0.8),
        notes,
    );
    out.push(
        Candidate::new(a, slot, eff)
            .adds(new - current)
            .reads_attribution(),
    );
}

/// Without the `campaigns` lever, the weakest channel's budget is the one to cut.
pub(super) fn channel_cut(c: &Ctx, slot: Slot, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    if ix
        .input
        .guardrails
        .allowed_levers
        .contains(&Lever::Campaigns)
    {
        return;
    }
    let worst = ix
        .channels
        .iter()
        .filter(|(_, s)| s.daily > 0.0 && s.window_spend > 0.0)
        .map(|(n, s)| (*n, s.revenue / s.window_spend, s))
        .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    let Some((ch, eff, st)) = worst else { return };
    let step = ix.risk.step;
    let current = floor_cents(st.daily);
    let new = ceil_cents(current * (1.0 - step));
    if new <= 0.0 {
        return;
    }
    let notes = format!(
        "{ch} returned {}x its estimated spend over {} ({} attributed on {}), the weakest \
         channel; cut its daily budget from {current:.2} to {new:.2} (-{}).",
        num(eff),
        c.window_words(),
        num(st.revenue),
        num(st.window_spend),
        pct(step)
    );
    let a = set_budget(
        c,
        (EntityType::Channel, ch),
        current,
        new,
        step * 100.0 * 0.5,
        c.confidence(0.75),
        notes,
    );
    out.push(Candidate::new(a, slot, -eff).reads_attribution());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::plays::Play;
    use crate::kernel::test_support::*;

    /// c1 returns 10x, c2 4x, c3 spends with nothing attributed; each spends 100/day.
    fn tenant() -> Tenant {
        Tenant::short()
            .campaign("c1", "running", 10_000.0, 3_000.0)
            .campaign("c2", "running", 10_000.0, 3_000.0)
            .campaign("c3", "running", 10_000.0, 3_000.0)
            .revenue(30_000.0, Some("c1"), Some("email"))
            .revenue(12_000.0, Some("c2"), Some("paid_search"))
    }

    fn run(t: Tenant, play: impl FnOnce(&Ctx, &mut Vec<Candidate>)) -> Vec<Candidate> {
        formed(&t.checked(), |c, _, out, _| play(c, out)).0
    }

    #[test]
    fn scale_raises_the_best_then_the_second_by_the_risk_step() {
        let best = run(tenant(), |c, out| {
            scale(c, 0, (Play::ScaleBest, 20), out, &mut Vec::new())
        });
        assert_eq!(ids(&best), ["campaigns.scale.c1.budget_daily"]);
        let a = &best[0].action;
        assert_eq!(
            (
                &a.proposed_change.current_value,
                &a.proposed_change.new_value
            ),
            (&json!(100.0), &json!(120.0))
        );
        assert!((best[0].adds_spend - 20.0).abs() < 1e-9);
        let second = run(tenant(), |c, out| {
            scale(c, 1, (Play::ScaleSecond, 24), out, &mut Vec::new())
        });
        assert_eq!(ids(&second), ["campaigns.scale.c2.budget_daily"]);
        assert!(
            run(tenant(), |c, out| scale(
                c,
                2,
                (Play::ScaleSecond, 24),
                out,
                &mut Vec::new()
            ))
            .is_empty()
        );
    }

    #[test]
    fn pause_wasted_stops_spend_that_brings_nothing() {
        let k = run(tenant(), |c, out| {
            pause_wasted(c, (Play::PauseWasted, 21), out)
        });
        assert_eq!(ids(&k), ["campaigns.pause.c3.status"]);
        assert!(k[0].uses_attribution);
        // Spend under half the median is not material.
        let t = Tenant::new()
            .campaign("c1", "running", 10_000.0, 3_000.0)
            .campaign("c2", "running", 10_000.0, 3_000.0)
            .campaign("c3", "running", 10_000.0, 900.0)
            .revenue(30_000.0, Some("c1"), None)
            .revenue(30_000.0, Some("c2"), None);
        assert!(run(t, |c, out| pause_wasted(c, (Play::PauseWasted, 21), out)).is_empty());
    }

    #[test]
    fn cut_pauses_what_loses_money_and_trims_the_rest() {
        let k = run(tenant(), |c, out| cut(c, 0, (Play::CutWorst, 20), out));
        assert_eq!(ids(&k), ["campaigns.pause.c3.status"]);
        let k = run(tenant(), |c, out| {
            cut(c, 1, (Play::CutSecondWorst, 21), out)
        });
        assert_eq!(ids(&k), ["campaigns.config_change.c2.budget_daily"]);
        assert_eq!(k[0].action.proposed_change.new_value, json!(80.0));
    }

    #[test]
    fn channel_budgets_move_only_without_the_campaigns_lever() {
        let channels = || tenant().guardrails(|g| g.allowed_levers = vec![Lever::Channels]);
        let up = run(channels(), |c, out| {
            channel_scale(c, (Play::ChannelScale, 25), out)
        });
        assert_eq!(ids(&up), ["campaigns.scale.email.budget_daily"]);
        let down = run(channels(), |c, out| {
            channel_cut(c, (Play::ChannelCut, 22), out)
        });
        assert_eq!(
            ids(&down),
            ["campaigns.config_change.paid_search.budget_daily"]
        );
        assert!(
            run(tenant(), |c, out| channel_scale(
                c,
                (Play::ChannelScale, 25),
                out
            ))
            .is_empty()
        );
        assert!(
            run(tenant(), |c, out| channel_cut(
                c,
                (Play::ChannelCut, 22),
                out
            ))
            .is_empty()
        );
    }
}
