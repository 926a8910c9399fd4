//! Seasonality-aware deviation detection: is a metric's newest day outside its normal range,
//! by a practical amount, in the direction that hurts? A pure function of the series, the
//! metric dictionary and `k`; no I/O, no clock. The method and its measured rates:
//! docs/deviations.md.
//!
//! - 21 days or more: MSTL(7) + AutoETS point forecast ([`model`]); the band is
//!   k · 1.4826 · MAD of the rolling-origin one-step errors over the last min(n/3, 28) days.
//! - 7–20 days: the median and MAD of the days before.
//! - Fewer than 7: nothing.
//!
//! Counts, money, durations and ratios are modelled on the log scale when every day is
//! positive (weekday patterns and noise are multiplicative there); fractions and percents as
//! they are. Missing days are gaps, never zeros.

pub mod model;
pub mod robust;

use crate::contract::Catalog;
use crate::contract::catalog::{Direction, MetricDef, MinChange, Unit};
use chrono::NaiveDate;
use robust::{MAD_SCALE, median_mad};
use serde::{Deserialize, Serialize};

/// The default width of the band in robust standard deviations.
pub const DEFAULT_K: f64 = 3.5;
/// Days below which nothing is said.
pub const MIN_DAYS: usize = 7;
/// Days from which the seasonal model is used.
pub const MODEL_DAYS: usize = 21;
/// The most one-step errors the band is built from.
pub const MAX_ERRORS: usize = 28;
/// Days before the newest that are read at all (older ones say little about tomorrow).
pub const MAX_HISTORY_DAYS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Band half-width in robust standard deviations of the one-step error.
    pub k: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self { k: DEFAULT_K }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MSTL(7) + AutoETS point forecast, band from out-of-sample one-step errors.
    MstlEts,
    /// Median and MAD of the days before.
    RollingMedian,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MstlEts => "mstl_ets",
            Method::RollingMedian => "rolling_median",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surprise {
    /// Outside the band, by a practical amount, in the direction the dictionary calls bad.
    Harmful,
    /// Outside the band the other way: recorded, never a trigger.
    Helpful,
}

/// What the detector concluded for one metric's newest day, with the numbers that decided it
/// (in the metric's own unit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub metric_id: String,
    pub day: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub k: f64,
    pub method: Method,
    /// Observed days before the newest that the method read.
    pub days_used: usize,
    /// Whether the model ran on the log scale (the band is then multiplicative).
    pub log_scale: bool,
    /// |observed − expected| over the band's half-width, on the model's scale.
    pub severity: f64,
    /// None while inside the band or below the minimum practical change.
    pub surprise: Option<Surprise>,
}

impl Assessment {
    pub fn is_harmful(&self) -> bool {
        self.surprise == Some(Surprise::Harmful)
    }

    /// (observed − expected) / |expected|; 0 when nothing was expected.
    pub fn relative_change(&self) -> f64 {
        if self.expected == 0.0 {
            0.0
        } else {
            (self.observed - self.expected) / self.expected.abs()
        }
    }
}

/// Assess the newest day of one metric's series (any order; duplicates keep the last; NaN and
/// infinities are gaps). None for dimensioned metrics and for fewer than [`MIN_DAYS`] days.
pub fn assess(def: &MetricDef, series: &[(NaiveDate, f64)], params: Params) -> Option<Assessment> {
    if def.dimension.is_some() || !params.k.is_finite() || params.k <= 0.0 {
        return None;
    }
    let mut points: Vec<(NaiveDate, f64)> = series
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    points.sort_by_key(|(d, _)| *d);
    points.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    let &(day, observed) = points.last()?;
    let first_day = day - chrono::Duration::days(MAX_HISTORY_DAYS);
    points.retain(|(d, _)| *d > first_day);
    let n = points.len();
    if n < MIN_DAYS {
        return None;
    }
    let history = &points[..n - 1];

    let log_scale = !matches!(def.unit, Unit::Fraction | Unit::Percent)
        && history.iter().all(|(_, v)| *v > 0.0);
    let floor = history
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::INFINITY, f64::min);
    let to_model = |v: f64| -> f64 {
        if !log_scale {
            v
        } else if v > 0.0 {
            v.ln()
        } else {
            // A zero after a positive history: far below anything seen, yet finite.
            floor.ln() - 20.0
        }
    };
    let from_model = |z: f64| if log_scale { z.exp() } else { z };

    let (center, half, method) = if n >= MODEL_DAYS {
        let (c, w) = model_band(history, day, n, &to_model, params.k)?;
        (c, w, Method::MstlEts)
    } else {
        let mut h: Vec<f64> = history.iter().map(|(_, v)| to_model(*v)).collect();
        let (med, mad) = median_mad(&mut h)?;
        (med, params.k * MAD_SCALE * mad, Method::RollingMedian)
    };
    let z = to_model(observed);
    let expected = from_model(center);
    let (lower, upper) = (from_model(center - half), from_model(center + half));
    if ![z, expected, lower, upper].iter().all(|v| v.is_finite()) {
        return None;
    }
    let distance = (z - center).abs();
    let severity = if half > 0.0 {
        (distance / half).min(f64::MAX)
    } else if distance > 0.0 {
        f64::MAX
    } else {
        0.0
    };
    let diff = observed - expected;
    let practical = match def.min_change {
        Some(MinChange::Relative(r)) => diff.abs() >= r * expected.abs(),
        Some(MinChange::Absolute(a)) => diff.abs() >= a,
        None => true,
    };
    let surprise = (distance > half && practical && diff != 0.0).then(|| {
        let harmful = match def.direction {
            Direction::Up => diff < 0.0,
            Direction::Down => diff > 0.0,
            Direction::Band => true,
        };
        if harmful {
            Surprise::Harmful
        } else {
            Surprise::Helpful
        }
    });
    Some(Assessment {
        metric_id: def.id.clone(),
        day,
        observed,
        expected,
        lower,
        upper,
        k: params.k,
        method,
        days_used: n - 1,
        log_scale,
        severity,
        surprise,
    })
}

/// (centre, half-width) on the model's scale from the seasonal model: one fit on the days
/// before the error window, its one-step errors over the window, the forecast for `day`.
fn model_band(
    history: &[(NaiveDate, f64)],
    day: NaiveDate,
    n: usize,
    to_model: &impl Fn(f64) -> f64,
    k: f64,
) -> Option<(f64, f64)> {
    let start = history.first()?.0;
    let last = usize::try_from((day - start).num_days()).ok()?;
    let mut x: Vec<Option<f64>> = vec![None; last];
    for (d, v) in history {
        let i = usize::try_from((*d - start).num_days()).ok()?;
        *x.get_mut(i)? = Some(to_model(*v));
    }
    let m = (n / 3).min(MAX_ERRORS);
    // The error window: the last m observed days before the newest.
    let from =
        usize::try_from((history.get(history.len().checked_sub(m)?)?.0 - start).num_days()).ok()?;
    let fit = model::fit(&x, from)?;
    let (mut errors, forecast) = fit.errors_and_forecast(&x, from, last);
    let m = errors.len() as f64;
    let (bias, mad) = median_mad(&mut errors)?;
    // A MAD of few errors is itself uncertain: the small-sample consistency factor m/(m−0.8)
    // (Croux–Rousseeuw) and the prediction-interval factor √(1 + 1/m); never narrower than
    // the day-to-day noise the fit period showed.
    let scale = (MAD_SCALE * mad * m / (m - 0.8) * (1.0 + 1.0 / m).sqrt()).max(fit.noise);
    Some((forecast + bias, k * scale))
}

/// Assess every undimensioned dictionary metric whose newest day is `day`. `series` gives each
/// metric's points by id; unknown ids are skipped.
pub fn assess_tenant<'a>(
    catalog: &Catalog,
    day: NaiveDate,
    series: impl IntoIterator<Item = (&'a str, &'a [(NaiveDate, f64)])>,
    params: Params,
) -> Vec<Assessment> {
    series
        .into_iter()
        .filter_map(|(id, points)| {
            let def = catalog.metric(id)?;
            assess(def, points, params).filter(|a| a.day == day)
        })
        .collect()
}

/// The one harmful deviation a tenant's day triggers on: the most severe, ties by metric id.
pub fn pick_trigger(assessments: &[Assessment]) -> Option<&Assessment> {
    assessments
        .iter()
        .filter(|a| a.is_harmful())
        .max_by(|a, b| {
            a.severity
                .total_cmp(&b.severity)
                .then_with(|| b.metric_id.cmp(&a.metric_id))
        })
}

#[cfg(test)]
mod tests;
