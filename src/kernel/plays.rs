//! Candidate actions ("plays") for each constraint, each derived from the tenant's own rows.
//! Plays propose; `guard::select` disposes (levers, blocks, executor map, spend, exposure, cap).

use super::data::{CampaignStats, Index, ceil_cents, floor_cents, round_to};
use super::diagnose::Diagnosis;
use super::experiment;
use super::health::{Finding, Kind};
use super::text::{num, pct};
use crate::contract::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Candidate {
    pub action: Action,
    /// Lower first; ties by evidence (higher first), then by id.
    pub rank: u8,
    pub evidence: f64,
    /// Estimated daily spend this action adds (scale, resume).
    pub adds_spend: f64,
    /// The play reads attributed revenue, so it is unreliable when attribution is missing.
    pub uses_attribution: bool,
    pub play: &'static str,
    /// Sizing of an experiment, for learning reruns.
    pub sizing: Option<experiment::Sizing>,
}

/// Builds an action id: `<subsystem>.<type>[.<entity>].<field>`.
pub fn action_id(s: Subsystem, t: ActionType, entity: Option<&str>, field: &str) -> String {
    match entity {
        Some(e) => format!("{s}.{t}.{e}.{field}"),
        None => format!("{s}.{t}.{field}"),
    }
}

pub struct Ctx<'a, 'b> {
    pub ix: &'b Index<'a>,
    pub diag: &'b Diagnosis,
}

impl Ctx<'_, '_> {
    pub fn abort(&self, metric: &str, op: Operator, threshold: f64) -> Option<AbortCondition> {
        (self.ix.reported.contains(metric) && threshold.is_finite()).then(|| AbortCondition {
            metric_id: metric.into(),
            operator: op,
            threshold: round_to(threshold, 4),
            consecutive_days: self.ix.params.abort_consecutive_days,
        })
    }

    /// Stop adding spend when CAC breaks its maximum (or rises 20% without a target).
    pub fn cac_guard(&self) -> Option<AbortCondition> {
        let t = self
            .ix
            .input
            .targets
            .cac_max
            .or_else(|| self.ix.latest_value("cac_blended").map(|v| v * 1.2))?;
        self.abort("cac_blended", Operator::Gt, t)
    }

    /// Stop cutting when pipeline drops 10% below today's level.
    pub fn pipeline_guard(&self) -> Option<AbortCondition> {
        let v = self.ix.latest_value("pipeline_total")?;
        self.abort("pipeline_total", Operator::Lt, v * 0.9)
    }

    fn drop_guard(&self, metric: &str, share: f64) -> Option<AbortCondition> {
        let v = self.ix.latest_value(metric)?;
        self.abort(metric, Operator::Lt, v * (1.0 - share))
    }

    fn rise_guard(&self, metric: &str, share: f64) -> Option<AbortCondition> {
        let v = self.ix.latest_value(metric)?;
        self.abort(metric, Operator::Gt, v * (1.0 + share))
    }

    fn confidence(&self, factor: f64) -> f64 {
        round_to((self.diag.confidence * factor).clamp(0.05, 0.95), 2)
    }

    fn window(&self) -> u32 {
        self.ix.default_window
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn make(
    s: Subsystem,
    t: ActionType,
    entity: Option<(EntityType, &str)>,
    field: &str,
    current: Value,
    new: Value,
    target_metric: &str,
    direction: ImpactDirection,
    magnitude: f64,
    confidence: f64,
    window: u32,
    aborts: Vec<Option<AbortCondition>>,
    notes: String,
) -> Action {
    Action {
        action_id: action_id(s, t, entity.map(|e| e.1), field),
        priority: 0,
        owner_subsystem: s,
        kind: t,
        target_metric: target_metric.into(),
        target_entity: entity.map(|(k, id)| TargetEntity {
            kind: k,
            id: id.into(),
        }),
        proposed_change: ProposedChange {
            field: field.into(),
            current_value: current,
            new_value: new,
        },
        guardrails: ActionGuardrails {
            max_additional_spend: None,
            max_exposure_percent: None,
            abort_conditions: aborts.into_iter().flatten().collect(),
        },
        experiment: None,
        observation_window_days: window,
        expected_impact: ExpectedImpact {
            metric_id: target_metric.into(),
            direction,
            magnitude_pct: round_to(magnitude.clamp(0.1, 100.0), 1),
            confidence,
        },
        notes_for_humans: notes,
    }
}

/// Pausing a running campaign: lowers blended CAC by `magnitude` percent, guarded by pipeline.
fn pause_campaign(
    c: &Ctx,
    s: &CampaignStats,
    magnitude: f64,
    confidence_factor: f64,
    notes: String,
) -> Action {
    make(
        Subsystem::Campaigns,
        ActionType::Pause,
        Some((EntityType::Campaign, s.id)),
        "status",
        json!("running"),
        json!("paused"),
        "cac_blended",
        ImpactDirection::Decrease,
        magnitude,
        c.confidence(confidence_factor),
        c.window(),
        vec![c.pipeline_guard()],
        notes,
    )
}

/// The campaign's share of today's total daily budget (0 when there is none).
fn daily_share(ix: &Index, s: &CampaignStats) -> f64 {
    if ix.daily_total > 0.0 {
        s.daily / ix.daily_total
    } else {
        0.0
    }
}

fn cand(action: Action, rank: u8, evidence: f64, play: &'static str) -> Candidate {
    Candidate {
        action,
        rank,
        evidence: if evidence.is_finite() { evidence } else { 0.0 },
        adds_spend: 0.0,
        uses_attribution: false,
        play,
        sizing: None,
    }
}

/// Running campaigns with attributed revenue and budget left, best revenue per spend first.
fn by_roas<'x, 'a>(ix: &'x Index<'a>) -> Vec<&'x CampaignStats<'a>> {
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

fn window_words(ix: &Index) -> String {
    format!("the {}-day window", ix.window_days)
}

// ------------------------------------------------------------------ plays

fn scale_campaigns(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let ranked = by_roas(ix);
    let total = ranked.len();
    let step = ix.risk.step;
    for (i, s) in ranked.iter().take(2).enumerate() {
        let current = floor_cents(s.daily);
        if current <= 0.0 {
            continue;
        }
        let new = floor_cents(current * (1.0 + step));
        let roas = s.roas().unwrap_or(0.0);
        let share = if ix.revenue_total > 0.0 {
            s.revenue / ix.revenue_total
        } else {
            0.0
        };
        let notes = format!(
            "{} returned {}x its estimated spend over {} ({} attributed on {}), the {} of {} \
             running campaigns with attributed revenue and budget left; raise its daily budget \
             from {current:.2} to {new:.2} (+{}, the {} risk step).",
            s.id,
            num(roas),
            window_words(ix),
            num(s.revenue),
            num(s.window_spend),
            if i == 0 { "best" } else { "second best" },
            total,
            pct(step),
            ix.risk.level
        );
        let action = make(
            Subsystem::Campaigns,
            ActionType::Scale,
            Some((EntityType::Campaign, s.id)),
            "budget_daily",
            json!(current),
            json!(new),
            "pipeline_total",
            ImpactDirection::Increase,
            share * step * 100.0,
            c.confidence(0.9),
            c.window(),
            vec![c.cac_guard(), c.pipeline_guard()],
            notes,
        );
        let mut k = cand(
            action,
            rank + i as u8 * 4,
            roas,
            "scale best revenue per spend",
        );
        k.adds_spend = new - current;
        k.uses_attribution = true;
        out.push(k);
    }
}

/// Running campaigns that spent materially in the window with nothing attributed.
fn pause_wasted(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
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
            window_words(ix),
            num(s.daily),
            others,
            num(ix.revenue_total - ix.revenue_unattributed)
        );
        let action = pause_campaign(c, s, daily_share(ix, s) * 100.0, 0.85, notes);
        let mut k = cand(action, rank, s.window_spend, "pause spend without revenue");
        k.uses_attribution = true;
        out.push(k);
    }
}

/// Economics: pause or cut the campaigns with the worst cost per attributed revenue.
fn cut_worst(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
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
    let step = ix.risk.step;
    for (i, s) in v.into_iter().take(2).enumerate() {
        let roas = s.roas().unwrap_or(0.0);
        let place = if i == 0 { "worst" } else { "second worst" };
        let evidence = if s.revenue > 0.0 {
            format!(
                "{} returned {}x its estimated spend over {} ({} attributed on {}), the {} cost \
                 per attributed revenue of {} running campaigns",
                s.id,
                num(roas),
                window_words(ix),
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
                window_words(ix),
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
                continue;
            }
            make(
                Subsystem::Campaigns,
                ActionType::ConfigChange,
                Some((EntityType::Campaign, s.id)),
                "budget_daily",
                json!(current),
                json!(new),
                "cac_blended",
                ImpactDirection::Decrease,
                share * step * 100.0,
                c.confidence(0.8),
                c.window(),
                vec![c.pipeline_guard()],
                format!(
                    "{evidence}; cut its daily budget from {current:.2} to {new:.2} (-{}, the {} \
                     risk step).",
                    pct(step),
                    ix.risk.level
                ),
            )
        };
        let mut k = cand(
            action,
            rank + i as u8,
            -cost(s).min(1e12),
            "cut worst cost per revenue",
        );
        k.uses_attribution = true;
        out.push(k);
    }
}

/// Channel with the best attributed revenue per spend (by revenue when spend is unknown).
fn strongest_channel<'x>(ix: &'x Index) -> Option<(&'x str, f64, f64)> {
    let rev_total: f64 = ix.channels.values().map(|c| c.revenue).sum();
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

/// A baseline conversion rate from the data and the daily number of units it applies to.
fn lead_baseline(ix: &Index) -> Option<(&'static str, f64, Option<f64>)> {
    let leads = ix.daily_mean("leads_created");
    for m in [
        "meeting_book_rate",
        "stage_conversion_lead_to_opp",
        "email_reply_rate",
    ] {
        if let Some(v) = ix.latest_value(m).filter(|v| *v > 0.0 && *v < 1.0) {
            return Some((m, v, leads));
        }
    }
    opp_baseline(ix)
}

fn opp_baseline(ix: &Index) -> Option<(&'static str, f64, Option<f64>)> {
    let v = ix
        .latest_value("win_rate")
        .filter(|v| *v > 0.0 && *v < 1.0)?;
    Some(("win_rate", v, Some(ix.opps.closing_30d as f64 / 30.0)))
}

#[allow(clippy::too_many_arguments)]
fn experiment_action(
    c: &Ctx,
    s: Subsystem,
    entity: Option<(EntityType, &str)>,
    field: &str,
    new: Value,
    baseline: (&'static str, f64, Option<f64>),
    volume_share: f64,
    hypothesis: String,
    evidence: String,
    drops: &mut Vec<(String, String)>,
) -> Option<(Action, experiment::Sizing)> {
    let ix = c.ix;
    let (metric, p, volume) = baseline;
    let cap = ix
        .input
        .guardrails
        .max_experiment_exposure_pct
        .unwrap_or(100.0);
    let treatment = ix.risk.treatment_pct.min(cap).min(50.0);
    let id = action_id(s, ActionType::Experiment, entity.map(|e| e.1), field);
    let sizing = match experiment::size(
        p,
        ix.risk.mde,
        ix.min_sample_size,
        treatment,
        volume.map(|v| v * volume_share),
        ix.params.max_experiment_days,
    ) {
        Ok(s) => s,
        Err(why) => {
            drops.push((id, format!("experiment sizing: {why}")));
            return None;
        }
    };
    let window = sizing.days.map_or(c.window(), |d| d.max(c.window()));
    let timing = match sizing.days {
        Some(d) => format!("reachable in about {d} days at the current volume"),
        None => "daily volume unknown, so the window is the default".into(),
    };
    let notes = format!(
        "{evidence} Test it on {treatment}% of traffic: {} per arm detects {} -> {} \
         ({metric}, {} relative, alpha 0.05, power 0.8), {timing}.",
        sizing.n,
        num(p),
        num(sizing.alternative),
        pct(ix.risk.mde)
    );
    let decreasing = sizing.alternative < p;
    let mut a = make(
        s,
        ActionType::Experiment,
        entity,
        field,
        Value::Null,
        new,
        metric,
        if decreasing {
            ImpactDirection::Decrease
        } else {
            ImpactDirection::Increase
        },
        ix.risk.mde * 100.0,
        c.confidence(0.6),
        window,
        vec![
            c.abort(
                metric,
                if decreasing {
                    Operator::Gt
                } else {
                    Operator::Lt
                },
                if decreasing {
                    p * (1.0 + ix.risk.mde)
                } else {
                    p * (1.0 - ix.risk.mde)
                },
            ),
            c.cac_guard(),
        ],
        notes,
    );
    a.guardrails.max_exposure_percent = Some(treatment);
    a.experiment = Some(Experiment {
        hypothesis,
        control_group_pct: treatment,
        treatment_group_pct: treatment,
        min_sample_size: sizing.n,
        success_metric: metric.into(),
        success_threshold: round_to(sizing.alternative, 4),
    });
    Some((a, sizing))
}

fn channel_experiment(
    c: &Ctx,
    rank: u8,
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
    let evidence = format!(
        "{ch} is the strongest channel: {} attributed over {} ({} of attributed revenue{}).",
        num(st.revenue),
        window_words(ix),
        pct(share),
        if eff > 0.0 {
            format!(", {}x its estimated spend", num(eff))
        } else {
            String::new()
        }
    );
    let new = json!({"channel": ch, "audience": "lookalike_of_closed_won"});
    if let Some((a, s)) = experiment_action(
        c,
        Subsystem::Campaigns,
        Some((EntityType::Channel, ch)),
        "target_segment",
        new,
        base,
        share,
        format!(
            "Extending {ch} to a lookalike audience of closed-won accounts raises {} without lowering efficiency.",
            base.0
        ),
        evidence,
        drops,
    ) {
        let mut k = cand(a, rank, eff, "experiment on strongest channel");
        k.uses_attribution = true;
        k.sizing = Some(s);
        out.push(k);
    }
}

fn content_experiment(
    c: &Ctx,
    rank: u8,
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
    let evidence = format!(
        "{} brings the most attributed revenue per spend ({}x over {}), so a better message \
         there pays back fastest.",
        best.id,
        num(best.roas().unwrap_or(0.0)),
        window_words(ix)
    );
    let new = json!({"control": 100.0 - t, "challenger": t});
    if let Some((a, s)) = experiment_action(
        c,
        Subsystem::Content,
        Some((EntityType::Campaign, best.id)),
        "variant_weights",
        new,
        base,
        share,
        format!("A challenger message on {} lifts {}.", best.id, base.0),
        evidence,
        drops,
    ) {
        let mut k = cand(a, rank, share, "content experiment");
        k.uses_attribution = true;
        k.sizing = Some(s);
        out.push(k);
    }
}

fn channel_scale(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let Some((ch, eff, _)) = strongest_channel(ix) else {
        return;
    };
    let st = &ix.channels[ch];
    let current = floor_cents(st.daily);
    if current <= 0.0 || eff <= 0.0 {
        return;
    }
    let step = ix.risk.step;
    let new = floor_cents(current * (1.0 + step));
    let notes = format!(
        "{ch} returned {}x its estimated spend over {} across {} campaign(s), the best channel; \
         raise its daily budget from {current:.2} to {new:.2} (+{}, the {} risk step).",
        num(eff),
        window_words(ix),
        st.campaigns,
        pct(step),
        ix.risk.level
    );
    let a = make(
        Subsystem::Campaigns,
        ActionType::Scale,
        Some((EntityType::Channel, ch)),
        "budget_daily",
        json!(current),
        json!(new),
        "pipeline_total",
        ImpactDirection::Increase,
        step * 100.0 * 0.5,
        c.confidence(0.8),
        c.window(),
        vec![c.cac_guard(), c.pipeline_guard()],
        notes,
    );
    let mut k = cand(a, rank, eff, "scale strongest channel");
    k.adds_spend = new - current;
    k.uses_attribution = true;
    out.push(k);
}

fn channel_cut(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
    let ix = c.ix;
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
        window_words(ix),
        num(st.revenue),
        num(st.window_spend),
        pct(step)
    );
    let a = make(
        Subsystem::Campaigns,
        ActionType::ConfigChange,
        Some((EntityType::Channel, ch)),
        "budget_daily",
        json!(current),
        json!(new),
        "cac_blended",
        ImpactDirection::Decrease,
        step * 100.0 * 0.5,
        c.confidence(0.75),
        c.window(),
        vec![c.pipeline_guard()],
        notes,
    );
    let mut k = cand(a, rank, -eff, "cut weakest channel");
    k.uses_attribution = true;
    out.push(k);
}

fn crm_sla(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
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
        window_words(ix),
        num(new)
    );
    let a = make(
        Subsystem::Crm,
        ActionType::ConfigChange,
        None,
        "follow_up_sla_hours",
        Value::Null,
        json!(new as i64),
        "speed_to_lead_hours",
        ImpactDirection::Decrease,
        (1.0 - new / speed) * 100.0,
        c.confidence(0.7),
        c.window(),
        vec![
            c.rise_guard("speed_to_lead_hours", 0.25),
            c.drop_guard("win_rate", 0.1),
            c.pipeline_guard(),
        ],
        notes,
    );
    out.push(cand(a, rank, trend, "tighten follow-up SLA"));
}

fn routing(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
    let ix = c.ix;
    let Some(speed) = ix.latest_value("speed_to_lead_hours") else {
        return;
    };
    let trend = ix.trend("speed_to_lead_hours").unwrap_or(0.0);
    if speed <= 1.0 || trend <= 0.0 {
        return;
    }
    let notes = format!(
        "Speed to lead rose {} over {} to {} hours; route new leads round-robin so no rep's \
         queue holds them.",
        pct(trend),
        window_words(ix),
        num(speed)
    );
    let a = make(
        Subsystem::Routing,
        ActionType::ConfigChange,
        None,
        "round_robin_enabled",
        Value::Null,
        json!(true),
        "speed_to_lead_hours",
        ImpactDirection::Decrease,
        trend * 100.0,
        c.confidence(0.6),
        c.window(),
        vec![
            c.rise_guard("speed_to_lead_hours", 0.25),
            c.pipeline_guard(),
        ],
        notes,
    );
    out.push(cand(
        a,
        rank,
        trend,
        "round-robin routing for speed to lead",
    ));
}

fn crm_experiment(c: &Ctx, rank: u8, out: &mut Vec<Candidate>, drops: &mut Vec<(String, String)>) {
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
        window_words(ix),
        base.2
            .map(|v| format!(", with about {} units a day entering the sequence", num(v)))
            .unwrap_or_default()
    );
    if let Some((a, s)) = experiment_action(
        c,
        Subsystem::Crm,
        None,
        "sequence_delay_days",
        json!(1),
        base,
        1.0,
        format!(
            "Shortening the delay between sequence touches to 1 day lifts {}.",
            base.0
        ),
        evidence,
        drops,
    ) {
        let mut k = cand(a, rank, base.1, "sequence experiment");
        k.sizing = Some(s);
        out.push(k);
    }
}

fn pricing_experiment(
    c: &Ctx,
    rank: u8,
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
    let base = ("win_rate", p, Some(volume));
    if let Some((mut a, s)) = experiment_action(
        c,
        Subsystem::Pricing,
        Some((EntityType::Segment, "late_stage")),
        "discount_max_pct",
        json!(cap),
        base,
        1.0,
        hypothesis,
        evidence,
        drops,
    ) {
        if let Some(g) = ix.input.targets.gross_margin_min
            && let Some(abort) = c.abort("gross_margin", Operator::Lt, g)
        {
            a.guardrails.abort_conditions.push(abort);
        }
        let mut k = cand(a, rank, p, "late-stage discount experiment");
        k.sizing = Some(s);
        out.push(k);
    }
}

fn promo_off(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
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
    let dir = if metric == "gross_margin" {
        ImpactDirection::Increase
    } else {
        ImpactDirection::Decrease
    };
    let a = make(
        Subsystem::Pricing,
        ActionType::ConfigChange,
        None,
        "promo_code_enabled",
        Value::Null,
        json!(false),
        metric,
        dir,
        (t.gap * 50.0).min(20.0),
        c.confidence(0.6),
        c.window(),
        vec![c.drop_guard("win_rate", 0.1), c.pipeline_guard()],
        notes,
    );
    out.push(cand(a, rank, t.severity, "disable promo codes"));
}

/// Data-quality fallbacks: stop overspent campaigns; hold the largest spender's daily budget.
fn pause_overspent(c: &Ctx, findings: &[Finding], rank: u8, out: &mut Vec<Candidate>) {
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
            out.push(cand(a, rank, s.spent - s.total, "pause overspent campaign"));
        }
    }
}

fn hold_largest(c: &Ctx, rank: u8, out: &mut Vec<Candidate>) {
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
    let a = make(
        Subsystem::Campaigns,
        ActionType::ConfigChange,
        Some((EntityType::Campaign, s.id)),
        "budget_daily",
        json!(current),
        json!(current),
        "cac_blended",
        ImpactDirection::Decrease,
        0.1,
        c.confidence(0.5),
        c.window(),
        vec![c.pipeline_guard()],
        notes,
    );
    out.push(cand(a, rank, s.daily, "hold largest spender"));
}

/// Every play for the constraint, in rank order of its own. `drops` collects plays that
/// could not even be formed (e.g. an experiment that needs more than 60 days).
pub fn candidates(
    c: &Ctx,
    findings: &[Finding],
    drops: &mut Vec<(String, String)>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    let levers = &c.ix.input.guardrails.allowed_levers;
    let constraint = if c.diag.constraint == BindingConstraint::DataQuality {
        pause_overspent(c, findings, 10, &mut out);
        hold_largest(c, 60, &mut out);
        underlying(c)
    } else {
        c.diag.constraint
    };
    match constraint {
        BindingConstraint::Demand | BindingConstraint::DataQuality => {
            scale_campaigns(c, 20, &mut out);
            pause_wasted(c, 21, &mut out);
            channel_experiment(c, 22, &mut out, drops);
            content_experiment(c, 23, &mut out, drops);
            if !levers.contains(&Lever::Campaigns) {
                channel_scale(c, 25, &mut out);
            }
            crm_sla(c, 30, &mut out);
            routing(c, 31, &mut out);
            crm_experiment(c, 32, &mut out, drops);
        }
        BindingConstraint::Conversion => {
            crm_sla(c, 20, &mut out);
            crm_experiment(c, 21, &mut out, drops);
            routing(c, 22, &mut out);
            pricing_experiment(c, 23, false, &mut out, drops);
            pause_wasted(c, 30, &mut out);
        }
        BindingConstraint::Economics => {
            // Margin is a price problem before it is a spend problem.
            let (spend, price) = if c.diag.priority_metric == "gross_margin" {
                (24, 20)
            } else {
                (20, 24)
            };
            cut_worst(c, spend, &mut out);
            if !levers.contains(&Lever::Campaigns) {
                channel_cut(c, spend + 2, &mut out);
            }
            pricing_experiment(c, price, true, &mut out, drops);
            promo_off(c, price + 1, &mut out);
            pause_wasted(c, 26, &mut out);
            crm_sla(c, 30, &mut out);
        }
    }
    out
}

/// The constraint the scores point at, used to pick safe plays under `data_quality`.
fn underlying(c: &Ctx) -> BindingConstraint {
    if c.diag.gate.is_some() {
        return BindingConstraint::Economics;
    }
    let mut best = c.diag.scores[0];
    for s in &c.diag.scores[1..] {
        if s.1 > best.1 {
            best = *s;
        }
    }
    best.0
}
