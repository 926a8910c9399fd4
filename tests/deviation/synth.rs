//! The fixed synthetic generator the calibration test, the bench and the loader test share:
//! tenants of nine daily metrics shaped like the example tenant's, with a weekly pattern (the
//! weekend 30–50% lower on volumes), a trend, noise, month-end spikes in bookings, single-day
//! holiday dips and a few missing days. Same seed, same data, on every machine.

use chrono::{Datelike, Duration, NaiveDate};

/// splitmix64: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Multiplicative: level × weekly × trend × (1 + noise·N).
    Volume,
    /// Additive around a level, for fractions.
    Rate,
}

/// How one of the nine metrics behaves.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub metric_id: &'static str,
    pub shape: Shape,
    pub level: f64,
    /// Weekend factor range (1 = no weekly pattern).
    pub weekend: (f64, f64),
    /// Relative noise for volumes, absolute for rates.
    pub noise: f64,
    /// Largest relative trend over 90 days, either way.
    pub trend: f64,
    /// Month-end multiplier on the last weekday of a month (1 = none).
    pub month_end: f64,
    /// Whether holidays dip it.
    pub holidays: bool,
    /// Whether the harmful direction is up (cost-like metrics).
    pub harmful_up: bool,
}

pub const PROFILES: [Profile; 9] = [
    Profile {
        metric_id: "leads_created",
        shape: Shape::Volume,
        level: 40.0,
        weekend: (0.5, 0.7),
        noise: 0.10,
        trend: 0.2,
        month_end: 1.0,
        holidays: true,
        harmful_up: false,
    },
    Profile {
        metric_id: "pipeline_total",
        shape: Shape::Volume,
        level: 600_000.0,
        weekend: (1.0, 1.0),
        noise: 0.03,
        trend: 0.2,
        month_end: 1.0,
        holidays: false,
        harmful_up: false,
    },
    Profile {
        metric_id: "bookings_new",
        shape: Shape::Volume,
        level: 20_000.0,
        weekend: (0.5, 0.7),
        noise: 0.10,
        trend: 0.2,
        month_end: 2.5,
        holidays: true,
        harmful_up: false,
    },
    Profile {
        metric_id: "cac_blended",
        shape: Shape::Volume,
        level: 3_000.0,
        weekend: (1.0, 1.0),
        noise: 0.08,
        trend: 0.1,
        month_end: 1.0,
        holidays: false,
        harmful_up: true,
    },
    Profile {
        metric_id: "win_rate",
        shape: Shape::Rate,
        level: 0.26,
        weekend: (1.0, 1.0),
        noise: 0.02,
        trend: 0.0,
        month_end: 1.0,
        holidays: false,
        harmful_up: false,
    },
    Profile {
        metric_id: "gross_margin",
        shape: Shape::Rate,
        level: 0.72,
        weekend: (1.0, 1.0),
        noise: 0.01,
        trend: 0.0,
        month_end: 1.0,
        holidays: false,
        harmful_up: false,
    },
    Profile {
        metric_id: "payback_months",
        shape: Shape::Volume,
        level: 14.0,
        weekend: (1.0, 1.0),
        noise: 0.05,
        trend: 0.1,
        month_end: 1.0,
        holidays: false,
        harmful_up: true,
    },
    Profile {
        metric_id: "speed_to_lead_hours",
        shape: Shape::Volume,
        level: 5.0,
        weekend: (1.3, 1.5),
        noise: 0.10,
        trend: 0.1,
        month_end: 1.0,
        holidays: false,
        harmful_up: true,
    },
    Profile {
        metric_id: "arr_total",
        shape: Shape::Volume,
        level: 2_400_000.0,
        weekend: (1.0, 1.0),
        noise: 0.01,
        trend: 0.1,
        month_end: 1.0,
        holidays: false,
        harmful_up: false,
    },
];

/// One tenant's nine series, the newest day last in each.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub newest: NaiveDate,
    pub series: Vec<(&'static str, Vec<(NaiveDate, f64)>)>,
}

impl Tenant {
    /// A 40% harmful move on the newest day of metric `i`: down for an up-is-better metric,
    /// up for a cost-like one.
    pub fn inject(&mut self, i: usize) {
        let harmful_up = PROFILES[i].harmful_up;
        if let Some(p) = self.series[i].1.last_mut() {
            p.1 *= if harmful_up { 1.4 } else { 0.6 };
        }
    }

    pub fn as_refs(&self) -> Vec<(&str, &[(NaiveDate, f64)])> {
        self.series
            .iter()
            .map(|(id, s)| (*id, s.as_slice()))
            .collect()
    }
}

/// Whether `d` is the last weekday of its month.
fn last_weekday_of_month(d: NaiveDate) -> bool {
    let mut next = d + Duration::days(1);
    while next.weekday().number_from_monday() > 5 {
        next += Duration::days(1);
    }
    d.weekday().number_from_monday() <= 5 && next.month() != d.month()
}

/// A tenant with `days` days ending on a day drawn from late 2026. The newest day is a normal
/// day (no holiday), as a detector's false positives are counted on normal days.
pub fn tenant(rng: &mut Rng, days: usize) -> Tenant {
    let base = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default();
    let newest = base + Duration::days((rng.unit() * 90.0) as i64);
    let first = newest - Duration::days(days as i64 - 1);
    // Two to four holidays a quarter, shared by the tenant's metrics, never the newest day.
    let holidays: Vec<i64> = (0..(days / 30 + 1))
        .map(|_| (rng.unit() * (days - 1) as f64) as i64)
        .collect();
    let series = PROFILES
        .iter()
        .map(|p| {
            let weekend = rng.range(p.weekend.0, p.weekend.1);
            let trend = rng.range(-p.trend, p.trend) / 90.0;
            let level = p.level * rng.range(0.5, 2.0);
            let mut s = Vec::with_capacity(days);
            for i in 0..days as i64 {
                let d = first + Duration::days(i);
                // About 2% of past days missing (never the newest).
                if i + 1 < days as i64 && rng.unit() < 0.02 {
                    continue;
                }
                let v = match p.shape {
                    Shape::Volume => {
                        let mut f = 1.0 + trend * i as f64;
                        if d.weekday().number_from_monday() > 5 {
                            f *= weekend;
                        }
                        if p.month_end != 1.0 && last_weekday_of_month(d) {
                            f *= p.month_end;
                        }
                        if p.holidays && holidays.contains(&i) && i + 1 < days as i64 {
                            f *= 0.3;
                        }
                        (level * f * (1.0 + p.noise * rng.normal())).max(level * 0.01)
                    }
                    Shape::Rate => (p.level + p.noise * rng.normal()).clamp(0.0, 1.0),
                };
                s.push((d, v));
            }
            (p.metric_id, s)
        })
        .collect();
    Tenant { newest, series }
}
