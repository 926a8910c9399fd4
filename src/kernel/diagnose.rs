//! Scores demand, conversion and economics and picks the binding constraint.

use super::data::{Index, PipelineQuality, round_to};
use super::health::{self, Finding};
use super::text::{num, pct, pct_1, qty};
use crate::contract::BindingConstraint;
use crate::contract::catalog::{Bound, Catalog, Direction, Lens, TargetLens, Unit};
use std::fmt;

/// How one target compares with its metric.
#[derive(Debug, Clone)]
pub struct TargetEval {
    pub field: &'static str,
    pub metric: String,
    pub bound: Bound,
    /// The lens its shortfall scores in, from the catalog.
    pub lens: Option<TargetLens>,
    /// Whether a breach trips the finance gate, from the catalog.
    pub finance_gate: bool,
    pub target: f64,
    pub current: f64,
    /// Positive = short of the target, as a fraction of the target.
    pub gap: f64,
    /// Relative move away from the target over the window, clamped to +-0.5 (negative = recovering).
    pub worsening: f64,
    /// `max(gap, 0) * (1 + worsening)`, or the weighted projected shortfall if larger.
    pub severity: f64,
    /// Change per day of the compared value (0 without a significant trend).
    pub per_day: f64,
    /// The compared value carried `horizon` days ahead at `per_day`.
    pub projected: f64,
    pub horizon: u32,
    /// Days until it crosses the target at this rate, when that is within the horizon.
    pub breach_in: Option<u32>,
    pub unit: Option<Unit>,
}

impl TargetEval {
    /// The gap in words: "over"/"under" by the target's direction.
    pub fn state(&self) -> String {
        let g = pct(self.gap.abs());
        match (self.bound, self.gap > 0.0) {
            (Bound::AtLeast, true) => format!("{g} under target"),
            (Bound::AtLeast, false) => format!("{g} above target"),
            (Bound::AtMost, true) => format!("{g} over its maximum"),
            (Bound::AtMost, false) => format!("{g} under its maximum"),
        }
    }

    /// The projection in words, for the diagnosis and the trace.
    pub fn forecast(&self) -> Option<String> {
        let days = self.breach_in?;
        let rate = pct_1(self.per_day.abs() / self.current.abs().max(1e-9));
        let (moving, miss) = match self.bound {
            Bound::AtLeast => ("falling", "misses target"),
            Bound::AtMost => ("rising", "breaches its maximum"),
        };
        Some(format!(
            "{moving} {rate}/day; at this rate it {miss} in {days} day{}",
            if days == 1 { "" } else { "s" }
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Part {
    pub lens: BindingConstraint,
    pub metric: String,
    pub value: f64,
    /// What its sentence says (`Diagnosis::why`): written only when a text or the trace shows
    /// it, since most parts are scored and never shown.
    reason: Reason,
}

#[derive(Debug, Clone, Copy)]
enum Reason {
    /// The target at this index of `Diagnosis::targets`.
    Target(usize),
    /// An untargeted metric's worsening trend, to its newest value.
    Trend {
        trend: f64,
        worsening: f64,
        latest: f64,
        unit: Unit,
    },
}

/// The sentence of a part: a target's gap and trend, or an untargeted metric's move.
fn why(p: &Part, targets: &[TargetEval]) -> String {
    match p.reason {
        Reason::Target(i) => {
            let t = &targets[i];
            let trend_word = if t.worsening > 0.0 {
                "moving away"
            } else {
                "recovering"
            };
            format!(
                "{} {} vs target {} ({}, {} {}{})",
                t.metric,
                qty(t.current, t.unit),
                qty(t.target, t.unit),
                t.state(),
                trend_word,
                pct(t.worsening.abs()),
                t.forecast().map(|f| format!("; {f}")).unwrap_or_default()
            )
        }
        Reason::Trend {
            trend,
            worsening,
            latest,
            unit,
        } => format!(
            "{} {} {} over the window to {}",
            p.metric,
            if trend < 0.0 { "fell" } else { "rose" },
            pct(worsening),
            qty(latest, Some(unit))
        ),
    }
}

#[derive(Debug, Clone)]
pub struct Funnel {
    /// Healthy pipeline (`pipeline_total` x `quality.share`) over the bookings target.
    pub coverage: f64,
    pub needed: f64,
    pub win_rate: Option<f64>,
    pub bookings_lens: BindingConstraint,
    /// Overdue and whale-weighted share of the pipeline (principle 5).
    pub quality: PipelineQuality,
    /// `pipeline_total` as reported.
    pub pipeline: f64,
}

impl Funnel {
    /// The sentence naming what was left out of coverage, when anything was.
    pub fn quality_words(&self) -> Option<String> {
        let q = &self.quality;
        let mut parts = Vec::new();
        if let Some((id, share, p, w)) = &q.whale {
            parts.push(format!(
                "{id} is {} of open pipeline at a {} win probability and counts at {} of its \
                 amount",
                pct(*share),
                pct(*p),
                pct(*w)
            ));
        }
        if q.overdue_share > 0.0 {
            parts.push(format!(
                "{} of open pipeline is past its expected close date and is left out",
                pct(q.overdue_share)
            ));
        }
        (q.share < 1.0 && !parts.is_empty()).then(|| {
            format!(
                "{}: coverage counts {} of {} pipeline",
                parts.join("; "),
                num(self.pipeline * q.share),
                num(self.pipeline)
            )
        })
    }
}

/// Revenue events and open opportunities at which the volume factor of confidence is 1
/// (principle 4); below, the factor is the square root of the share.
pub const FULL_VOLUME: f64 = 30.0;

#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub constraint: BindingConstraint,
    pub priority_metric: String,
    pub text: String,
    pub confidence: f64,
    /// demand, conversion, economics.
    pub scores: [(BindingConstraint, f64); 3],
    pub parts: Vec<Part>,
    pub targets: Vec<TargetEval>,
    pub funnel: Option<Funnel>,
    pub gate: Option<String>,
    pub healthy: bool,
    /// How the confidence was computed, for the trace (written when shown).
    pub confidence_parts: ConfidenceParts,
    /// The volume behind the binding constraint, 0-1 (principle 4); 1 under data_quality.
    pub volume: f64,
}

impl Diagnosis {
    pub fn target(&self, metric: &str) -> Option<&TargetEval> {
        self.targets.iter().find(|t| t.metric == metric)
    }

    /// The sentence of one of its parts.
    pub fn why(&self, p: &Part) -> String {
        why(p, &self.targets)
    }
}

/// What stands behind a constraint (principle 4), in words.
#[derive(Debug, Clone, Copy)]
enum Volume {
    None,
    Opportunities(usize),
    Events(usize),
    EventsAndOpportunities(usize, usize),
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Volume::None => Ok(()),
            Volume::Opportunities(o) => write!(f, "{o} open opportunities"),
            Volume::Events(e) => write!(f, "{e} revenue events"),
            Volume::EventsAndOpportunities(e, o) => {
                write!(f, "{e} revenue events, {o} open opportunities")
            }
        }
    }
}

/// The factors of the confidence; its `Display` is the trace's line.
#[derive(Debug, Clone)]
pub struct ConfidenceParts {
    completeness: f64,
    days_factor: f64,
    days: f64,
    full_days: f64,
    sep_factor: f64,
    separation: f64,
    volume: f64,
    volume_words: Volume,
    confidence: f64,
}

impl fmt::Display for ConfidenceParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let volume_part = if self.volume < 1.0 {
            format!(
                " x volume_factor {:.3} (sqrt of {} / {FULL_VOLUME})",
                self.volume, self.volume_words
            )
        } else {
            String::new()
        };
        write!(
            f,
            "completeness {:.3} x days_factor {:.3} ({} days / {}) x separation_factor {:.3} \
             (separation {:.3}){volume_part} = {}",
            self.completeness,
            self.days_factor,
            self.days,
            self.full_days,
            self.sep_factor,
            self.separation,
            self.confidence
        )
    }
}

const LENSES: [BindingConstraint; 3] = [
    BindingConstraint::Demand,
    BindingConstraint::Conversion,
    BindingConstraint::Economics,
];

/// A significant move smaller than this over the window is not material: it neither scores nor
/// moves a lever (a 1% wobble is not a reason to act).
pub const MATERIAL_MOVE: f64 = 0.05;

/// The highest confidence of an "on track" diagnosis (nothing binds).
pub const ON_TRACK_CONFIDENCE: f64 = 0.4;

/// Metrics without a target that still weigh in through their trend, with their weight.
fn trend_weight(metric: &str) -> f64 {
    match metric {
        "win_rate" | "stage_conversion_opp_to_close" => 1.0,
        _ => 0.5,
    }
}

/// The value a target is compared with. `bookings_new` is a daily flow and its target is per
/// 30 days: the trailing-30-day sum (mean x 30 when fewer days are reported). Others: the newest.
pub fn current_value(ix: &Index, metric: &str) -> Option<f64> {
    if metric == "bookings_new" {
        let pts = ix.window_points(metric);
        let recent: Vec<f64> = pts
            .iter()
            .filter(|p| p.0 > ix.end - 30)
            .map(|p| p.1)
            .collect();
        if recent.is_empty() {
            return ix.latest_value(metric).map(|v| v * 30.0);
        }
        return Some(recent.iter().sum::<f64>() / recent.len() as f64 * 30.0);
    }
    ix.latest_value(metric)
}

pub fn diagnose(ix: &Index, catalog: &Catalog, findings: &[Finding]) -> Diagnosis {
    let p = ix.params;
    let mut targets = Vec::new();
    for (field, target) in ix.input.targets.defined() {
        let Some(def) = catalog.target(field) else {
            continue;
        };
        let Some(current) = current_value(ix, &def.metric) else {
            continue;
        };
        let gap = match def.bound {
            Bound::AtLeast => (target - current) / target,
            Bound::AtMost => (current - target) / target,
        };
        let trend = ix.trend(&def.metric).unwrap_or(0.0);
        let worsening = match def.bound {
            Bound::AtLeast => -trend,
            Bound::AtMost => trend,
        }
        .clamp(-0.5, 0.5);
        let mut severity = gap.max(0.0) * (1.0 + worsening);
        // Forecast: the significant robust trend carried to the horizon. The trailing-30-day
        // bookings sum moves 30 x the daily slope per day.
        let horizon = ix.default_window;
        let per_day = ix
            .trend_stats(&def.metric)
            .filter(|t| t.significant)
            .map_or(0.0, |t| {
                t.slope
                    * if def.metric == "bookings_new" {
                        30.0
                    } else {
                        1.0
                    }
            });
        let projected = current + per_day * f64::from(horizon);
        let toward = match def.bound {
            Bound::AtLeast => per_day < 0.0,
            Bound::AtMost => per_day > 0.0,
        };
        let mut breach_in = None;
        if gap <= 0.0 && toward && worsening > 0.0 {
            let days = ((current - target).abs() / per_day.abs()).ceil().max(1.0);
            if days <= f64::from(horizon) {
                let proj_gap = match def.bound {
                    Bound::AtLeast => (target - projected) / target,
                    Bound::AtMost => (projected - target) / target,
                };
                // Weighted by how soon: a breach tomorrow counts fully, one at the horizon 1/H.
                let weight = (f64::from(horizon) - days + 1.0) / f64::from(horizon);
                severity = severity.max(proj_gap.max(0.0) * weight);
                breach_in = Some(days as u32);
            }
        }
        targets.push(TargetEval {
            field,
            metric: def.metric.clone(),
            bound: def.bound,
            lens: catalog.target_lens(def),
            finance_gate: def.finance_gate,
            target,
            current,
            gap,
            worsening,
            severity,
            per_day,
            projected,
            horizon,
            breach_in,
            unit: catalog.metric(&def.metric).map(|d| d.unit),
        });
    }

    // Funnel logic: does a bookings shortfall come from too little pipeline?
    let win_rate = ix
        .latest_value("win_rate")
        .filter(|w| *w > 0.0 && *w <= 1.0);
    let pipeline = ix.latest_value("pipeline_total");
    let funnel = match (ix.input.targets.bookings_new, pipeline) {
        (Some(bt), Some(pl)) if bt > 0.0 => {
            let needed = win_rate.map_or(p.default_needed_coverage, |w| 1.0 / w);
            let quality = ix
                .opps
                .quality(win_rate.unwrap_or(ix.opps.mean_probability));
            let coverage = pl * quality.share / bt;
            Some(Funnel {
                coverage,
                needed,
                win_rate,
                bookings_lens: if coverage < needed {
                    BindingConstraint::Demand
                } else {
                    BindingConstraint::Conversion
                },
                quality,
                pipeline: pl,
            })
        }
        _ => None,
    };
    let pipeline_short = targets
        .iter()
        .any(|t| t.metric == "pipeline_total" && t.severity > 0.0);
    let bookings_lens = funnel.as_ref().map_or(
        if pipeline_short {
            BindingConstraint::Demand
        } else {
            BindingConstraint::Conversion
        },
        |f| f.bookings_lens,
    );

    let mut parts = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let lens = match t.lens {
            Some(TargetLens::Demand) => BindingConstraint::Demand,
            Some(TargetLens::Conversion) => BindingConstraint::Conversion,
            Some(TargetLens::Economics) => BindingConstraint::Economics,
            Some(TargetLens::Funnel) => bookings_lens,
            None => continue,
        };
        parts.push(Part {
            lens,
            metric: t.metric.clone(),
            value: t.severity,
            reason: Reason::Target(i),
        });
    }
    // Untargeted demand and conversion metrics count through their trend alone.
    let targeted: Vec<&str> = targets.iter().map(|t| t.metric.as_str()).collect();
    for m in &ix.reported {
        let Some(def) = catalog.metric(m) else {
            continue;
        };
        let lens = match def.lens {
            Lens::Demand => BindingConstraint::Demand,
            Lens::Conversion => BindingConstraint::Conversion,
            _ => continue,
        };
        if targeted.contains(m) || def.dimension.is_some() {
            continue;
        }
        let Some(trend) = ix.trend(m) else { continue };
        let worsening = match def.direction {
            Direction::Up => -trend,
            Direction::Down => trend,
            Direction::Band => continue,
        }
        .clamp(0.0, 0.5);
        if worsening < MATERIAL_MOVE {
            continue;
        }
        parts.push(Part {
            lens,
            metric: (*m).to_owned(),
            value: worsening * trend_weight(m),
            reason: Reason::Trend {
                trend,
                worsening,
                latest: ix.latest_value(m).unwrap_or(0.0),
                unit: def.unit,
            },
        });
    }
    parts.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.metric.cmp(&b.metric))
    });
    let score = |l: BindingConstraint| {
        parts
            .iter()
            .filter(|x| x.lens == l)
            .map(|x| x.value)
            .fold(0.0, f64::max)
    };
    let scores = LENSES.map(|l| (l, score(l)));

    let gate_breach = targets
        .iter()
        .filter(|t| t.finance_gate && t.gap > p.finance_tolerance)
        .max_by(|a, b| {
            a.severity
                .total_cmp(&b.severity)
                .then_with(|| b.metric.cmp(&a.metric))
        });
    let gate = gate_breach.map(|t| {
        format!(
            "finance gate: {} is {} against {} {} (beyond the {} tolerance)",
            t.metric,
            num(t.current),
            if t.bound == Bound::AtMost {
                "a maximum of"
            } else {
                "a minimum of"
            },
            num(t.target),
            pct(p.finance_tolerance)
        )
    });

    let best = highest(&scores);
    let healthy = best.1 <= 0.0 && gate.is_none();
    let constraint = if gate.is_some() {
        BindingConstraint::Economics
    } else {
        best.0
    };

    let material: Vec<&Finding> = findings.iter().filter(|f| f.material).collect();
    let (constraint, priority_metric) = if let Some(f) = material.first() {
        (
            BindingConstraint::DataQuality,
            health::priority_metric(f).to_owned(),
        )
    } else {
        (
            constraint,
            priority_for(constraint, &parts, gate_breach, catalog),
        )
    };

    // Confidence: completeness x days of data x separation of the top two scores.
    let watched = health::watched_metrics(ix, catalog);
    let expected = watched.len() as f64 * f64::from(ix.window_days);
    let present: usize = watched.iter().map(|m| ix.window_points(m).len()).sum();
    let completeness = if expected > 0.0 {
        (present as f64 / expected).min(1.0)
    } else {
        0.0
    };
    let days = watched
        .iter()
        .map(|m| ix.window_points(m).len())
        .max()
        .unwrap_or(0) as f64;
    let days_factor = (days / p.full_confidence_days).min(1.0);
    let mut sorted = scores.map(|s| s.1);
    sorted.sort_by(|a, b| b.total_cmp(a));
    let winner = scores
        .iter()
        .find(|s| s.0 == constraint)
        .map_or(sorted[0], |s| s.1);
    let runner_up = scores
        .iter()
        .filter(|s| s.0 != constraint)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    let separation = (winner - runner_up).max(0.0);
    let sep_factor = 0.5 + 0.5 * (separation / p.clear_separation).min(1.0);
    // Principle 4: the volume behind the constraint: revenue events for demand and economics,
    // open opportunities for conversion (and both when a bookings gap routes through them).
    let vol = |n: usize| (n as f64 / FULL_VOLUME).min(1.0).sqrt();
    let (events, opps) = (ix.events_in_window, ix.opps.count);
    let (volume, volume_words) = match constraint {
        BindingConstraint::DataQuality => (1.0, Volume::None),
        BindingConstraint::Conversion => (vol(opps), Volume::Opportunities(opps)),
        _ => (
            vol(events).min(if funnel.is_some() { vol(opps) } else { 1.0 }),
            if funnel.is_some() {
                Volume::EventsAndOpportunities(events, opps)
            } else {
                Volume::Events(events)
            },
        ),
    };
    let raw = completeness * days_factor * sep_factor * volume;
    let confidence = if constraint == BindingConstraint::DataQuality {
        p.data_quality_confidence
    } else if healthy {
        // Nothing binds: say so with a low confidence rather than a confident guess.
        round_to(raw.clamp(0.05, ON_TRACK_CONFIDENCE), 2)
    } else {
        round_to(raw.clamp(0.05, 0.95), 2)
    };
    let confidence_parts = ConfidenceParts {
        completeness,
        days_factor,
        days,
        full_days: p.full_confidence_days,
        sep_factor,
        separation,
        volume,
        volume_words,
        confidence,
    };

    let mut text = diagnosis_text(
        constraint,
        &priority_metric,
        &targets,
        funnel.as_ref(),
        &material,
        &parts,
        healthy,
    );
    if volume < 1.0 {
        text = format!(
            "{text} Thin data: only {volume_words} stand behind this, so confidence is {} and \
             steps are smaller.",
            pct(confidence)
        );
    }
    let cuts = ix.cap_cuts();
    if let (Some(cap), false) = (ix.input.guardrails.max_daily_spend, cuts.is_empty()) {
        let named: Vec<&str> = cuts.iter().map(|k| k.campaign.id).collect();
        text = format!(
            "Running campaigns spend {}/day, {} over max_daily_spend {}: cutting back under it \
             comes first, worst return first ({}). {text}",
            num(ix.daily_total),
            num(ix.daily_total - cap),
            num(cap),
            named.join(", ")
        );
    }
    Diagnosis {
        constraint,
        priority_metric,
        text,
        confidence,
        scores,
        parts,
        targets,
        funnel,
        gate,
        healthy,
        confidence_parts,
        volume,
    }
}

/// Highest score wins; ties go to the earlier lens (demand, conversion, economics).
pub fn highest(scores: &[(BindingConstraint, f64); 3]) -> (BindingConstraint, f64) {
    let mut best = scores[0];
    for s in &scores[1..] {
        if s.1 > best.1 {
            best = *s;
        }
    }
    best
}

fn priority_for(
    constraint: BindingConstraint,
    parts: &[Part],
    gate: Option<&TargetEval>,
    catalog: &Catalog,
) -> String {
    if let Some(t) = gate {
        return t.metric.clone();
    }
    let lens_of = |m: &str| catalog.metric(m).map(|d| d.lens);
    let want = match constraint {
        BindingConstraint::Demand => Lens::Demand,
        BindingConstraint::Conversion => Lens::Conversion,
        _ => Lens::Economics,
    };
    // Parts are sorted by value: the first of this lens whose metric belongs to the lens.
    if let Some(x) = parts
        .iter()
        .find(|x| x.lens == constraint && x.value > 0.0 && lens_of(&x.metric) == Some(want))
    {
        return x.metric.clone();
    }
    match constraint {
        BindingConstraint::Conversion => "win_rate".into(),
        BindingConstraint::Economics => parts
            .iter()
            .find(|x| x.lens == constraint)
            .map_or("cac_blended".into(), |x| x.metric.clone()),
        _ => "pipeline_total".into(),
    }
}

fn diagnosis_text(
    constraint: BindingConstraint,
    priority: &str,
    targets: &[TargetEval],
    funnel: Option<&Funnel>,
    material: &[&Finding],
    parts: &[Part],
    healthy: bool,
) -> String {
    if let Some(f) = material.first() {
        let more = if material.len() > 1 {
            format!(" ({} material data issues in all)", material.len())
        } else {
            String::new()
        };
        return format!(
            "Data quality binds: {}{more} Decisions that add spend wait until it is fixed.",
            f.description
        );
    }
    let t = targets.iter().find(|t| t.metric == priority);
    let target_sentence = |t: &TargetEval| {
        let dir = if t.worsening > 0.0 {
            format!("moving {} further away over the window", pct(t.worsening))
        } else if t.worsening < 0.0 {
            format!("recovering {} over the window", pct(-t.worsening))
        } else {
            "flat over the window".into()
        };
        if let Some(f) = t.forecast() {
            return format!(
                "{} is {} ({}, {}) but {f}.",
                t.metric,
                qty(t.current, t.unit),
                t.state(),
                qty(t.target, t.unit)
            );
        }
        format!(
            "{} is {} against a {} of {} ({}), {dir}.",
            t.metric,
            qty(t.current, t.unit),
            if t.bound == Bound::AtMost {
                "maximum"
            } else {
                "target"
            },
            qty(t.target, t.unit),
            t.state()
        )
    };
    let funnel_sentence = funnel.map(|f| {
        format!(
            " Pipeline covers {}x the bookings target; {}x is needed{}.{}",
            num(f.coverage),
            num(f.needed),
            f.win_rate
                .map(|w| format!(" at a {} win rate", pct(w)))
                .unwrap_or_default(),
            f.quality_words()
                .map(|w| format!(" Pipeline quality: {w}."))
                .unwrap_or_default()
        )
    });
    if healthy {
        let lines: Vec<String> = targets
            .iter()
            .take(2)
            .map(|t| format!("{} {} ({})", t.metric, qty(t.current, t.unit), t.state()))
            .collect();
        return format!(
            "On track: all {} targets are met, none is projected to miss within the horizon, \
             and no tracked metric moves materially ({}). Only low-risk, measured steps; \
             confidence is low because nothing binds.",
            targets.len(),
            lines.join(", ")
        );
    }
    let lead = match constraint {
        BindingConstraint::Demand => "Demand binds: ",
        BindingConstraint::Conversion => "Conversion binds: ",
        _ => "Economics binds: ",
    };
    let main = match t {
        Some(t) => target_sentence(t),
        None => parts
            .iter()
            .find(|p| p.metric == priority)
            .map_or(format!("{priority} is the weakest metric."), |p| {
                format!("{}.", why(p, targets))
            }),
    };
    let extra = match constraint {
        BindingConstraint::Demand | BindingConstraint::Conversion => {
            funnel_sentence.unwrap_or_default()
        }
        _ => String::new(),
    };
    // A conversion diagnosis led by a rate also names the bookings shortfall it explains.
    if t.is_none()
        && constraint == BindingConstraint::Conversion
        && let (Some(b), Some(p)) = (
            targets
                .iter()
                .find(|t| t.metric == "bookings_new" && t.gap > 0.0),
            parts.iter().find(|p| p.metric == priority),
        )
    {
        return format!(
            "{lead}bookings_new is {} against a target of {} ({}) while {}.{extra}",
            qty(b.current, b.unit),
            qty(b.target, b.unit),
            b.state(),
            why(p, targets)
        );
    }
    format!("{lead}{main}{extra}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_support::*;

    fn diag(t: Tenant) -> Diagnosis {
        diagnosed(&t.checked()).2
    }

    fn score(d: &Diagnosis, lens: BindingConstraint) -> f64 {
        d.scores.iter().find(|s| s.0 == lens).unwrap().1
    }

    #[test]
    fn a_tenant_meeting_every_target_is_healthy_and_demand_bound() {
        let d = diag(Tenant::new());
        assert!(d.healthy);
        assert_eq!(d.constraint, BindingConstraint::Demand);
        assert_eq!(d.priority_metric, "pipeline_total");
        assert!(d.scores.iter().all(|s| s.1 == 0.0));
    }

    #[test]
    fn severity_is_the_gap_weighed_by_the_trend() {
        // Flat pipeline at 450,000 against 900,000: gap 0.5, no trend.
        let d = diag(Tenant::short());
        let t = d.target("pipeline_total").unwrap();
        assert_eq!((t.gap, t.worsening, t.severity), (0.5, 0.0, 0.5));
        // Falling toward 450,000 moves away from the target: the same gap weighs more.
        let d = diag(Tenant::new().series("pipeline_total", |i| {
            600_000.0 - 150_000.0 * i as f64 / 29.0
        }));
        let t = d.target("pipeline_total").unwrap();
        assert!(t.worsening > 0.0 && t.severity > t.gap, "{t:?}");
        assert_eq!(d.constraint, BindingConstraint::Demand);
    }

    #[test]
    fn bookings_current_value_is_the_trailing_thirty_day_sum() {
        let c = Tenant::new().flat("bookings_new", 9_000.0).checked();
        let ix = index(&c);
        assert_eq!(current_value(&ix, "bookings_new"), Some(270_000.0));
        assert_eq!(current_value(&ix, "pipeline_total"), Some(1_000_000.0));
    }

    #[test]
    fn thin_pipeline_makes_a_bookings_gap_demand() {
        // Coverage 500,000 / 300,000 = 1.67x, needed 1 / 0.25 = 4x.
        let d = diag(
            Tenant::new()
                .flat("bookings_new", 8_000.0)
                .flat("pipeline_total", 500_000.0)
                .flat("win_rate", 0.25)
                .targets(|t| t.pipeline_total = None),
        );
        let f = d.funnel.as_ref().unwrap();
        assert_eq!(f.bookings_lens, BindingConstraint::Demand);
        assert_eq!(d.constraint, BindingConstraint::Demand);
    }

    #[test]
    fn ample_pipeline_makes_a_bookings_gap_conversion() {
        // Coverage 1,500,000 / 300,000 = 5x >= 4x needed: deals are there but do not close.
        let d = diag(
            Tenant::new()
                .flat("bookings_new", 8_000.0)
                .flat("pipeline_total", 1_500_000.0)
                .series("win_rate", |i| 0.3 - 0.05 * i as f64 / 29.0),
        );
        assert_eq!(
            d.funnel.as_ref().unwrap().bookings_lens,
            BindingConstraint::Conversion
        );
        assert_eq!(d.constraint, BindingConstraint::Conversion);
        assert_eq!(d.priority_metric, "win_rate");
    }

    #[test]
    fn the_finance_gate_beats_a_larger_demand_gap() {
        // CAC 3,700 is 5.7% over its 3,500 maximum; pipeline is 50% short.
        let t = || Tenant::short();
        let d = diag(t().flat("cac_blended", 3_700.0));
        assert!(d.gate.is_some());
        assert!(score(&d, BindingConstraint::Demand) > score(&d, BindingConstraint::Economics));
        assert_eq!(d.constraint, BindingConstraint::Economics);
        assert_eq!(d.priority_metric, "cac_blended");
        // 2.9% over is within the 5% tolerance: demand still binds.
        let d = diag(t().flat("cac_blended", 3_600.0));
        assert!(d.gate.is_none());
        assert_eq!(d.constraint, BindingConstraint::Demand);
    }

    #[test]
    fn a_material_finding_makes_data_quality_bind_with_fixed_confidence() {
        let d = diag(Tenant::new().without_days("pipeline_total", &[25, 26, 27, 28, 29]));
        assert_eq!(d.constraint, BindingConstraint::DataQuality);
        assert_eq!(d.priority_metric, "data_freshness_hours");
        assert_eq!(d.confidence, 0.9);
    }

    #[test]
    fn untargeted_metrics_count_through_their_worsening_trend_only() {
        // Leads falling by half: a demand part at half weight; rising leads add nothing.
        let d = diag(Tenant::new().series("leads_created", |i| 100.0 - 50.0 * i as f64 / 29.0));
        let p = d
            .parts
            .iter()
            .find(|p| p.metric == "leads_created")
            .unwrap();
        assert_eq!(p.lens, BindingConstraint::Demand);
        assert!((p.value - 0.25).abs() < 1e-9, "{}", p.value);
        let d = diag(Tenant::new().series("leads_created", |i| 50.0 + i as f64));
        assert!(d.parts.iter().all(|p| p.metric != "leads_created"));
    }

    #[test]
    fn a_close_race_halves_confidence() {
        let clear = diag(Tenant::short().volume());
        assert_eq!(clear.confidence, 0.95);
        // Pipeline 10% short against win rate falling about 10%: separation near 0.
        let close = diag(
            Tenant::new()
                .volume()
                .flat("pipeline_total", 810_000.0)
                .series("win_rate", |i| 0.3 - 0.03 * i as f64 / 29.0),
        );
        assert!(
            (0.5..0.55).contains(&close.confidence),
            "{}",
            close.confidence
        );
    }

    #[test]
    fn p4_confidence_reflects_the_volume_behind_the_constraint() {
        let full = diag(Tenant::short().volume());
        assert_eq!((full.volume, full.confidence), (1.0, 0.95));
        // 6 revenue events and 5 open opportunities behind a demand constraint.
        let mut t = Tenant::short();
        for _ in 0..6 {
            t = t.revenue(1_000.0, None, Some("email"));
        }
        for _ in 0..5 {
            t = t.opportunity(0.3, 40);
        }
        let thin = diag(t);
        assert!(
            (thin.volume - (5.0f64 / 30.0).sqrt()).abs() < 1e-9,
            "{}",
            thin.volume
        );
        assert_eq!(thin.confidence, round_to((5.0f64 / 30.0).sqrt(), 2));
        assert!(
            thin.text
                .contains("Thin data: only 6 revenue events, 5 open opportunities")
        );
        assert!(
            thin.confidence_parts
                .to_string()
                .contains("volume_factor 0.408"),
            "{}",
            thin.confidence_parts
        );
    }

    #[test]
    fn p5_coverage_counts_healthy_pipeline_and_names_what_it_left_out() {
        // Pipeline 1,500,000 against a 300,000 bookings target at a 25% win rate: 5x covers 4x.
        let t = || {
            Tenant::new()
                .flat("bookings_new", 8_000.0)
                .flat("pipeline_total", 1_500_000.0)
                .flat("win_rate", 0.25)
                .volume()
        };
        let d = diag(t());
        assert_eq!(
            d.funnel.as_ref().unwrap().bookings_lens,
            BindingConstraint::Conversion
        );
        // Half the opportunities' amount is past its expected close date: 2.5x < 4x.
        let mut stale = t();
        for o in stale.0.opportunities.iter_mut().take(15) {
            o.expected_close_date = crate::kernel::test_support::day(10);
        }
        let d = diag(stale);
        let f = d.funnel.as_ref().unwrap();
        assert!((f.coverage - 2.5).abs() < 1e-9, "{}", f.coverage);
        assert_eq!(f.bookings_lens, BindingConstraint::Demand);
        assert!(
            d.text
                .contains("50% of open pipeline is past its expected close date"),
            "{}",
            d.text
        );
    }
}
