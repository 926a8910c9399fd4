//! Candidate actions ("plays") for each constraint, each derived from the tenant's own rows,
//! one file per lever. Plays propose; `guard::select` disposes (levers, blocks, executor map,
//! spend, exposure, cap). Which plays a constraint forms, and the rank that orders their
//! actions, is one table per constraint below (documented in docs/kernel.md).

mod campaigns;
mod content;
mod crm;
mod data_quality;
mod pricing;
mod routing;

use super::data::{Index, round_to};
use super::diagnose::Diagnosis;
use super::experiment;
use super::health::Finding;
use super::text::{num, pct};
use crate::contract::catalog::{Catalog, Unit};
use crate::contract::*;
use serde_json::Value;
use std::fmt;

/// A play: one way of forming candidate actions from the data. Its `Display` is the name the
/// `--explain` trace shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Play {
    /// The running campaign with the best attributed revenue per spend: raise its budget.
    ScaleBest,
    /// The same for the second best.
    ScaleSecond,
    /// Running campaigns with material spend and nothing attributed: pause (at most 2).
    PauseWasted,
    /// The campaign with the worst cost per attributed revenue: cut or pause it.
    CutWorst,
    /// The same for the second worst.
    CutSecondWorst,
    ChannelExperiment,
    ContentExperiment,
    /// Only without the `campaigns` lever.
    ChannelScale,
    /// Only without the `campaigns` lever.
    ChannelCut,
    FollowUpSla,
    RoundRobin,
    SequenceExperiment,
    /// Allow a late-stage discount to raise the close rate (conversion).
    DiscountExperiment,
    /// Cap late-stage discounts to protect margin (economics).
    DiscountCapExperiment,
    PromoOff,
    PauseOverspent,
    HoldLargest,
    /// Running spend above `max_daily_spend`: cut back under it, worst return first.
    CutToCap,
    /// Campaigns in a channel whose own CAC is over `cac_max`: cut by the step (at most 2).
    CutOverCac,
    /// Formed by `learning` from a failed result, never by a table.
    Revert,
}

impl fmt::Display for Play {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Play::ScaleBest | Play::ScaleSecond => "scale best revenue per spend",
            Play::PauseWasted => "pause spend without revenue",
            Play::CutWorst | Play::CutSecondWorst => "cut worst cost per revenue",
            Play::ChannelExperiment => "experiment on strongest channel",
            Play::ContentExperiment => "content experiment",
            Play::ChannelScale => "scale strongest channel",
            Play::ChannelCut => "cut weakest channel",
            Play::FollowUpSla => "tighten follow-up SLA",
            Play::RoundRobin => "round-robin routing for speed to lead",
            Play::SequenceExperiment => "sequence experiment",
            Play::DiscountExperiment | Play::DiscountCapExperiment => {
                "late-stage discount experiment"
            }
            Play::PromoOff => "disable promo codes",
            Play::PauseOverspent => "pause overspent campaign",
            Play::HoldLargest => "cap largest spender's lifetime budget",
            Play::CutToCap => "cut back under max_daily_spend",
            Play::CutOverCac => "cut spend in a channel over cac_max",
            Play::Revert => "revert failed change",
        })
    }
}

/// A play and its rank: lower ranks come first among the actions; ties go to the stronger
/// evidence, then to the smaller action id.
pub type Slot = (Play, u8);

// One table per constraint. A table lists the plays in the order they are formed (which only
// decides the order of the trace lines of candidates that learning drops); the rank decides the
// order of the actions.

pub const DEMAND: &[Slot] = &[
    (Play::ScaleBest, 20),
    (Play::ScaleSecond, 24),
    (Play::PauseWasted, 21),
    (Play::ChannelExperiment, 22),
    (Play::ContentExperiment, 23),
    (Play::ChannelScale, 25),
    (Play::CutOverCac, 26),
    (Play::FollowUpSla, 30),
    (Play::RoundRobin, 31),
    (Play::SequenceExperiment, 32),
];

/// On track (nothing binds): measured, low-risk steps only; nothing floor-wide (no SLA or
/// routing change for the whole team).
pub const ON_TRACK: &[Slot] = &[
    (Play::ScaleBest, 20),
    (Play::PauseWasted, 21),
    (Play::ChannelExperiment, 22),
    (Play::ContentExperiment, 23),
    (Play::CutOverCac, 26),
    (Play::SequenceExperiment, 32),
];

/// No spend scaling.
pub const CONVERSION: &[Slot] = &[
    (Play::FollowUpSla, 20),
    (Play::SequenceExperiment, 21),
    (Play::RoundRobin, 22),
    (Play::DiscountExperiment, 23),
    (Play::PauseWasted, 30),
    (Play::CutOverCac, 31),
];

/// Spend cuts before price.
pub const ECONOMICS: &[Slot] = &[
    (Play::CutWorst, 20),
    (Play::CutSecondWorst, 21),
    (Play::ChannelCut, 22),
    (Play::DiscountCapExperiment, 24),
    (Play::PromoOff, 25),
    (Play::PauseWasted, 26),
    (Play::FollowUpSla, 30),
];

/// Economics led by `gross_margin`: margin is a price problem before it is a spend problem.
pub const ECONOMICS_MARGIN: &[Slot] = &[
    (Play::CutWorst, 24),
    (Play::CutSecondWorst, 25),
    (Play::ChannelCut, 26),
    (Play::DiscountCapExperiment, 20),
    (Play::PromoOff, 21),
    (Play::PauseWasted, 26),
    (Play::FollowUpSla, 30),
];

/// Formed first under `data_quality`, then the table of the constraint the scores point at
/// (whose plays that add spend or read broken attribution the guardrails drop).
pub const DATA_QUALITY: &[Slot] = &[(Play::PauseOverspent, 10), (Play::HoldLargest, 60)];

/// Any constraint: cutting running spend back under `max_daily_spend` comes first; then the
/// revert of a failed recent result, and the next step of a confirmed success right after it.
pub const OVER_CAP_RANK: u8 = 0;
pub const REVERT_RANK: u8 = 1;
pub const NEXT_STEP_RANK: u8 = 2;

/// The table of a (non-data-quality) constraint.
pub fn table(constraint: BindingConstraint, priority_metric: &str) -> &'static [Slot] {
    match constraint {
        BindingConstraint::Demand | BindingConstraint::DataQuality => DEMAND,
        BindingConstraint::Conversion => CONVERSION,
        BindingConstraint::Economics if priority_metric == "gross_margin" => ECONOMICS_MARGIN,
        BindingConstraint::Economics => ECONOMICS,
    }
}

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
    pub play: Play,
    /// Sizing of an experiment, for learning reruns.
    pub sizing: Option<experiment::Sizing>,
}

impl Candidate {
    pub fn new(action: Action, (play, rank): Slot, evidence: f64) -> Self {
        Self {
            action,
            rank,
            evidence: if evidence.is_finite() { evidence } else { 0.0 },
            adds_spend: 0.0,
            uses_attribution: false,
            play,
            sizing: None,
        }
    }

    /// The estimated daily spend the action adds.
    pub fn adds(mut self, spend: f64) -> Self {
        self.adds_spend = spend;
        self
    }

    /// The play read attributed revenue.
    pub fn reads_attribution(mut self) -> Self {
        self.uses_attribution = true;
        self
    }

    pub fn sized(mut self, sizing: experiment::Sizing) -> Self {
        self.sizing = Some(sizing);
        self
    }
}

/// Principle 6: how far an abort threshold sits from today's value, relative to medium risk.
/// Lower risk tolerance means tighter promises.
pub fn guard_factor(level: RiskTolerance) -> f64 {
    match level {
        RiskTolerance::Low => 0.5,
        RiskTolerance::Medium => 1.0,
        RiskTolerance::High => 1.5,
    }
}

/// Principle 6: the share of the treatment arm's own rate an experiment may lose before it is
/// stopped. Below 1, so the abort on the overall metric stays reachable: with a share `s` in
/// treatment, the overall metric falls by at most `s` even when the arm collapses.
pub fn arm_tolerance(level: RiskTolerance) -> f64 {
    match level {
        RiskTolerance::Low => 0.25,
        RiskTolerance::Medium => 0.5,
        RiskTolerance::High => 0.75,
    }
}

/// The abort threshold on the overall metric for an experiment with `treatment_pct` in
/// treatment and baseline `p`: the level the overall metric reaches when the treatment arm
/// loses `arm_tolerance` of its rate (gains it, for a metric that should fall).
pub fn reachable_experiment_threshold(
    p: f64,
    treatment_pct: f64,
    level: RiskTolerance,
    decreasing: bool,
) -> f64 {
    let moved = (treatment_pct / 100.0).clamp(0.0, 1.0) * arm_tolerance(level);
    if decreasing {
        p * (1.0 + moved)
    } else {
        p * (1.0 - moved)
    }
}

/// Builds an action id: `<subsystem>.<type>[.<entity>].<field>`.
pub fn action_id(s: Subsystem, t: ActionType, entity: Option<&str>, field: &str) -> String {
    // Pieces pushed into one allocation: every candidate builds its id.
    let (s, t) = (s.as_str(), t.as_str());
    let e = entity.map_or(0, |e| e.len() + 1);
    let mut id = String::with_capacity(s.len() + t.len() + e + field.len() + 2);
    id.push_str(s);
    id.push('.');
    id.push_str(t);
    id.push('.');
    if let Some(e) = entity {
        id.push_str(e);
        id.push('.');
    }
    id.push_str(field);
    id
}

pub struct Ctx<'a, 'b> {
    pub ix: &'b Index<'a>,
    pub diag: &'b Diagnosis,
    pub catalog: &'b Catalog,
}

/// Whether `metric op threshold` can ever hold: strictly inside the metric's unit range, so
/// a "below" bound is above the unit's floor and an "above" bound under its ceiling.
pub fn reachable(catalog: &Catalog, metric: &str, op: Operator, threshold: f64) -> bool {
    let (lo, hi) = match catalog.metric(metric).map(|d| (d.unit, d.id.as_str())) {
        Some((_, "pipeline_velocity")) => (f64::NEG_INFINITY, f64::INFINITY),
        Some((_, "net_revenue_retention")) => (0.0, f64::INFINITY),
        Some((Unit::Fraction, _)) => (0.0, 1.0),
        Some((Unit::Percent, _)) => (0.0, 100.0),
        _ => (0.0, f64::INFINITY),
    };
    threshold.is_finite()
        && match op {
            Operator::Lt | Operator::Le => threshold > lo,
            Operator::Gt | Operator::Ge => threshold < hi,
        }
}

impl Ctx<'_, '_> {
    /// An abort condition on a metric the tenant reports, if it can fire at all.
    pub fn abort(&self, metric: &str, op: Operator, threshold: f64) -> Option<AbortCondition> {
        let threshold = round_to(threshold, 4);
        (self.ix.reported.contains(metric) && reachable(self.catalog, metric, op, threshold)).then(
            || AbortCondition {
                metric_id: metric.into(),
                operator: op,
                threshold,
                consecutive_days: self.ix.params.abort_consecutive_days,
            },
        )
    }

    /// Stop adding spend when CAC breaks its maximum (or rises 20% x the risk factor without
    /// a target).
    pub fn cac_guard(&self) -> Option<AbortCondition> {
        let k = guard_factor(self.ix.risk.level);
        let t = self.ix.input.targets.cac_max.or_else(|| {
            self.ix
                .latest_value("cac_blended")
                .map(|v| v * (1.0 + 0.2 * k))
        })?;
        self.abort("cac_blended", Operator::Gt, t)
    }

    /// Stop cutting when pipeline drops 10% x the risk factor below today's level.
    pub fn pipeline_guard(&self) -> Option<AbortCondition> {
        let v = self.ix.latest_value("pipeline_total")?;
        let k = guard_factor(self.ix.risk.level);
        self.abort("pipeline_total", Operator::Lt, v * (1.0 - 0.1 * k))
    }

    fn drop_guard(&self, metric: &str, share: f64) -> Option<AbortCondition> {
        let v = self.ix.latest_value(metric)?;
        let k = guard_factor(self.ix.risk.level);
        self.abort(metric, Operator::Lt, v * (1.0 - share * k))
    }

    fn rise_guard(&self, metric: &str, share: f64) -> Option<AbortCondition> {
        let v = self.ix.latest_value(metric)?;
        let k = guard_factor(self.ix.risk.level);
        self.abort(metric, Operator::Gt, v * (1.0 + share * k))
    }

    fn confidence(&self, factor: f64) -> f64 {
        round_to((self.diag.confidence * factor).clamp(0.05, 0.95), 2)
    }

    fn window(&self) -> u32 {
        self.ix.default_window
    }

    fn window_words(&self) -> String {
        format!("the {}-day window", self.ix.window_days)
    }
}

/// One proposed change, by name; `into_action` gives it the contract's shape.
pub struct Proposal<'a> {
    pub subsystem: Subsystem,
    pub kind: ActionType,
    pub entity: Option<(EntityType, &'a str)>,
    pub field: &'a str,
    pub current: Value,
    pub new: Value,
    /// Target metric, and the metric of the expected impact.
    pub metric: &'a str,
    pub direction: ImpactDirection,
    /// Expected impact in percent, clamped to 0.1-100.
    pub magnitude: f64,
    pub confidence: f64,
    pub window: u32,
    /// Abort conditions; those that cannot be formed (unreported metric) are left out.
    pub aborts: Vec<Option<AbortCondition>>,
    pub notes: String,
}

impl Proposal<'_> {
    pub fn into_action(self) -> Action {
        Action {
            action_id: action_id(
                self.subsystem,
                self.kind,
                self.entity.map(|e| e.1),
                self.field,
            ),
            priority: 0,
            owner_subsystem: self.subsystem,
            kind: self.kind,
            target_metric: self.metric.into(),
            target_entity: self.entity.map(|(k, id)| TargetEntity {
                kind: k,
                id: id.into(),
            }),
            proposed_change: ProposedChange {
                field: self.field.into(),
                current_value: self.current,
                new_value: self.new,
            },
            guardrails: ActionGuardrails {
                max_additional_spend: None,
                max_exposure_percent: None,
                abort_conditions: self.aborts.into_iter().flatten().collect(),
            },
            experiment: None,
            observation_window_days: self.window,
            expected_impact: ExpectedImpact {
                metric_id: self.metric.into(),
                direction: self.direction,
                magnitude_pct: round_to(self.magnitude.clamp(0.1, 100.0), 1),
                confidence: self.confidence,
            },
            notes_for_humans: self.notes,
        }
    }
}

/// A conversion rate to experiment on: (metric, latest rate, measured units per day it
/// applies to: None when the input measures no volume of its unit).
type Baseline = (&'static str, f64, Option<f64>);

/// The unit a rate's sample is counted in.
fn sample_unit(metric: &str) -> &'static str {
    match metric {
        "meeting_book_rate" | "stage_conversion_lead_to_opp" => "leads",
        "email_reply_rate" => "sends",
        _ => "opportunities",
    }
}

/// Leads a day, measured: `leads_created`, else `mqls_created` (window means, above 0).
fn lead_volume(ix: &Index) -> Option<f64> {
    ["leads_created", "mqls_created"]
        .into_iter()
        .find_map(|m| ix.daily_mean(m).filter(|v| *v > 0.0))
}

/// A lead-level baseline with a measured daily number of leads; else the win rate. (The input
/// measures no sends, so `email_reply_rate` alone gives no experiment.)
fn lead_baseline(ix: &Index) -> Option<Baseline> {
    if let Some(leads) = lead_volume(ix) {
        for m in ["meeting_book_rate", "stage_conversion_lead_to_opp"] {
            if let Some(v) = ix.latest_value(m).filter(|v| *v > 0.0 && *v < 1.0) {
                return Some((m, v, Some(leads)));
            }
        }
    }
    opp_baseline(ix)
}

fn opp_baseline(ix: &Index) -> Option<Baseline> {
    let v = ix
        .latest_value("win_rate")
        .filter(|v| *v > 0.0 && *v < 1.0)?;
    let closing = ix.opps.closing_30d as f64 / 30.0;
    Some(("win_rate", v, (closing > 0.0).then_some(closing)))
}

/// An experiment a play wants to run, before sizing.
struct Trial<'a> {
    subsystem: Subsystem,
    entity: Option<(EntityType, &'a str)>,
    field: &'a str,
    new: Value,
    baseline: Baseline,
    /// Share of the baseline's daily volume the experiment reaches.
    volume_share: f64,
    /// Its hypothesis and evidence, written once it is sized (most trials are dropped before).
    text: &'a dyn Fn() -> (String, String),
}

impl Trial<'_> {
    /// Sizes the experiment by power analysis and forms its action; an experiment that cannot
    /// reach its sample in time goes to `drops` with the numbers.
    fn form(
        self,
        c: &Ctx,
        drops: &mut Vec<(String, String)>,
    ) -> Option<(Action, experiment::Sizing)> {
        let ix = c.ix;
        let (metric, p, volume) = self.baseline;
        let cap = ix
            .input
            .guardrails
            .max_experiment_exposure_pct
            .unwrap_or(100.0);
        let treatment = ix.risk.treatment_pct.min(cap).min(50.0);
        let id = action_id(
            self.subsystem,
            ActionType::Experiment,
            self.entity.map(|e| e.1),
            self.field,
        );
        // No measured volume of its unit: no promise of a sample, so no experiment.
        let Some(volume) = volume.map(|v| v * self.volume_share).filter(|v| *v > 0.0) else {
            drops.push((
                id,
                format!(
                    "experiment sizing: no measured daily volume of {} for {metric}; no experiment",
                    sample_unit(metric)
                ),
            ));
            return None;
        };
        let sizing = match experiment::size(
            p,
            ix.risk.mde,
            ix.min_sample_size,
            treatment,
            Some(volume),
            ix.params.max_experiment_days,
        ) {
            Ok(s) => s,
            Err(why) => {
                drops.push((
                    id,
                    format!("experiment sizing: {why} ({})", sample_unit(metric)),
                ));
                return None;
            }
        };
        let window = sizing.days.map_or(c.window(), |d| d.max(c.window()));
        let timing = match sizing.days {
            Some(d) => format!(
                "reachable in about {d} days at {} {} a day",
                num(volume),
                sample_unit(metric)
            ),
            None => "reachable within the default window".into(),
        };
        let decreasing = sizing.alternative < p;
        let stop = reachable_experiment_threshold(p, treatment, ix.risk.level, decreasing);
        let (hypothesis, evidence) = (self.text)();
        let notes = format!(
            "{} Test it on {treatment}% of traffic: {} per arm detects {} -> {} \
             ({metric}, {} relative, alpha 0.05, power 0.8), {timing}. Stop if overall {metric} \
             {} {} for {} days: where it lands if the treatment arm loses {} of its rate ({} \
             risk), reachable with {treatment}% in treatment.",
            evidence,
            sizing.n,
            num(p),
            num(sizing.alternative),
            pct(ix.risk.mde),
            if decreasing {
                "rises above"
            } else {
                "falls below"
            },
            num(round_to(stop, 4)),
            ix.params.abort_consecutive_days,
            pct(arm_tolerance(ix.risk.level)),
            ix.risk.level
        );
        let mut a = Proposal {
            subsystem: self.subsystem,
            kind: ActionType::Experiment,
            entity: self.entity,
            field: self.field,
            current: Value::Null,
            new: self.new,
            metric,
            direction: if decreasing {
                ImpactDirection::Decrease
            } else {
                ImpactDirection::Increase
            },
            magnitude: ix.risk.mde * 100.0,
            confidence: c.confidence(0.6),
            window,
            // Principle 6: a threshold this exposure can reach (a threshold at the MDE on the
            // overall metric could never fire with a small treatment share).
            aborts: vec![
                c.abort(
                    metric,
                    if decreasing {
                        Operator::Gt
                    } else {
                        Operator::Lt
                    },
                    reachable_experiment_threshold(p, treatment, ix.risk.level, decreasing),
                ),
                c.cac_guard(),
            ],
            notes,
        }
        .into_action();
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
}

/// Every play for the constraint, formed in its table's order. `drops` collects plays that
/// could not even be formed (e.g. an experiment that needs more than 60 days).
pub fn candidates(
    c: &Ctx,
    findings: &[Finding],
    drops: &mut Vec<(String, String)>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    campaigns::cut_to_cap(c, (Play::CutToCap, OVER_CAP_RANK), &mut out);
    let constraint = if c.diag.constraint == BindingConstraint::DataQuality {
        form(c, DATA_QUALITY, findings, &mut out, drops);
        underlying(c)
    } else {
        c.diag.constraint
    };
    let t = if c.diag.healthy {
        ON_TRACK
    } else {
        table(constraint, &c.diag.priority_metric)
    };
    form(c, t, findings, &mut out, drops);
    out
}

fn form(
    c: &Ctx,
    table: &[Slot],
    findings: &[Finding],
    out: &mut Vec<Candidate>,
    drops: &mut Vec<(String, String)>,
) {
    for &slot in table {
        match slot.0 {
            Play::ScaleBest => campaigns::scale(c, 0, slot, out, drops),
            Play::ScaleSecond => campaigns::scale(c, 1, slot, out, drops),
            Play::PauseWasted => campaigns::pause_wasted(c, slot, out),
            Play::CutWorst => campaigns::cut(c, 0, slot, out),
            Play::CutSecondWorst => campaigns::cut(c, 1, slot, out),
            Play::ChannelExperiment => campaigns::channel_experiment(c, slot, out, drops),
            Play::ChannelScale => campaigns::channel_scale(c, slot, out),
            Play::ChannelCut => campaigns::channel_cut(c, slot, out),
            Play::ContentExperiment => content::experiment(c, slot, out, drops),
            Play::FollowUpSla => crm::follow_up_sla(c, slot, out),
            Play::SequenceExperiment => crm::sequence_experiment(c, slot, out, drops),
            Play::RoundRobin => routing::round_robin(c, slot, out),
            Play::DiscountExperiment => pricing::discount_experiment(c, slot, false, out, drops),
            Play::DiscountCapExperiment => pricing::discount_experiment(c, slot, true, out, drops),
            Play::PromoOff => pricing::promo_off(c, slot, out),
            Play::PauseOverspent => data_quality::pause_overspent(c, findings, slot, out),
            Play::HoldLargest => data_quality::hold_largest(c, slot, out),
            Play::CutOverCac => campaigns::cut_over_cac(c, slot, out),
            Play::Revert | Play::CutToCap => {}
        }
    }
}

/// The constraint the scores point at, used to pick safe plays under `data_quality`.
fn underlying(c: &Ctx) -> BindingConstraint {
    if c.diag.gate.is_some() {
        return BindingConstraint::Economics;
    }
    super::diagnose::highest(&c.diag.scores).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_support::*;

    const TABLES: [&[Slot]; 6] = [
        DEMAND,
        ON_TRACK,
        CONVERSION,
        ECONOMICS,
        ECONOMICS_MARGIN,
        DATA_QUALITY,
    ];

    #[test]
    fn each_table_forms_a_play_once_and_never_a_revert() {
        for t in TABLES {
            for (i, (p, _)) in t.iter().enumerate() {
                assert!(*p != Play::Revert && *p != Play::CutToCap);
                assert!(t[..i].iter().all(|(q, _)| q != p), "{p:?} twice");
            }
        }
    }

    #[test]
    fn cap_cuts_then_learning_rank_before_every_play() {
        let lowest = TABLES.iter().flat_map(|t| t.iter()).map(|s| s.1).min();
        const { assert!(OVER_CAP_RANK < REVERT_RANK && REVERT_RANK < NEXT_STEP_RANK) };
        assert!(Some(NEXT_STEP_RANK) < lowest);
    }

    #[test]
    fn margin_puts_price_before_spend_cuts() {
        let rank = |t: &[Slot], p: Play| t.iter().find(|s| s.0 == p).unwrap().1;
        let e = table(BindingConstraint::Economics, "cac_blended");
        let m = table(BindingConstraint::Economics, "gross_margin");
        assert!(rank(e, Play::CutWorst) < rank(e, Play::DiscountCapExperiment));
        assert!(rank(m, Play::DiscountCapExperiment) < rank(m, Play::CutWorst));
        assert_eq!(table(BindingConstraint::DataQuality, ""), DEMAND);
    }

    #[test]
    fn no_table_but_demand_scales() {
        for t in [CONVERSION, ECONOMICS, ECONOMICS_MARGIN, DATA_QUALITY] {
            assert!(t.iter().all(|s| !matches!(
                s.0,
                Play::ScaleBest | Play::ScaleSecond | Play::ChannelScale
            )));
        }
    }

    #[test]
    fn proposal_forms_the_id_and_clamps_the_magnitude() {
        let a = Proposal {
            subsystem: Subsystem::Pricing,
            kind: ActionType::Experiment,
            entity: Some((EntityType::Segment, "late_stage")),
            field: "discount_max_pct",
            current: Value::Null,
            new: serde_json::json!(10),
            metric: "win_rate",
            direction: ImpactDirection::Increase,
            magnitude: 250.0,
            confidence: 0.5,
            window: 14,
            aborts: vec![None],
            notes: "n".into(),
        }
        .into_action();
        assert_eq!(
            a.action_id,
            "pricing.experiment.late_stage.discount_max_pct"
        );
        assert_eq!(a.expected_impact.magnitude_pct, 100.0);
        assert!(a.guardrails.abort_conditions.is_empty());
    }

    #[test]
    fn data_quality_forms_its_own_plays_before_the_underlying_ones() {
        // Overspent and stale: data quality binds over a demand shortfall.
        let c = Tenant::short()
            .without_days("cac_blended", &[25, 26, 27, 28, 29])
            .campaign("c1", "running", 1_000.0, 3_000.0)
            .campaign("c2", "running", 10_000.0, 1_500.0)
            .revenue(5_000.0, Some("c2"), Some("email"))
            .checked();
        let (cands, _) = formed(&c, |ctx, f, out, drops| {
            out.extend(candidates(ctx, f, drops))
        });
        let plays: Vec<(Play, u8)> = cands.iter().map(|k| (k.play, k.rank)).collect();
        assert_eq!(
            plays[..2],
            [(Play::PauseOverspent, 10), (Play::HoldLargest, 60)]
        );
        assert!(plays[2..].contains(&(Play::ScaleBest, 20)));
    }

    #[test]
    fn an_experiment_that_needs_too_long_is_dropped_with_its_numbers() {
        // Win rate 0.25 and one opportunity closing in 30 days: far too slow.
        let c = Tenant::new()
            .flat("win_rate", 0.25)
            .opportunity(0.3, 10)
            .checked();
        let (cands, drops) = formed(&c, |ctx, _, out, drops| {
            crm::sequence_experiment(ctx, (Play::SequenceExperiment, 32), out, drops)
        });
        assert!(cands.is_empty());
        assert_eq!(drops[0].0, "crm.experiment.sequence_delay_days");
        assert!(
            drops[0].1.starts_with("experiment sizing: needs 1"),
            "{}",
            drops[0].1
        );
    }

    #[test]
    fn p6_an_experiment_abort_is_reachable_by_its_exposure_and_tighter_at_low_risk() {
        for level in [
            RiskTolerance::Low,
            RiskTolerance::Medium,
            RiskTolerance::High,
        ] {
            for share in [5.0, 10.0, 20.0, 50.0] {
                let t = reachable_experiment_threshold(0.2, share, level, false);
                // A total collapse of the arm takes the overall rate to 0.2 x (1 - share).
                assert!(
                    t > 0.2 * (1.0 - share / 100.0) && t < 0.2,
                    "{level:?} {share} {t}"
                );
                let t = reachable_experiment_threshold(0.2, share, level, true);
                assert!(t < 0.2 * (1.0 + share / 100.0) && t > 0.2);
            }
        }
        // 10% in treatment at low risk: the old threshold, 30% below (the MDE), could never
        // fire; the new one is 2.5% below.
        let low = reachable_experiment_threshold(0.2, 10.0, RiskTolerance::Low, false);
        assert!((low - 0.195).abs() < 1e-12, "{low}");
        let high = reachable_experiment_threshold(0.2, 10.0, RiskTolerance::High, false);
        assert!(low > high);
        assert!(guard_factor(RiskTolerance::Low) < guard_factor(RiskTolerance::High));
    }
}
