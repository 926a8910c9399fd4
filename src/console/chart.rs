//! A daily line chart as inline SVG geometry: the series, a target line and abort thresholds.
//! Pure: numbers in, coordinates and labels out; the template draws them (and escapes the
//! labels), so no markup is built from data here.

use chrono::NaiveDate;

pub const WIDTH: f64 = 820.0;
pub const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// A horizontal line across the plot: the target, or an abort threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub y: String,
    pub label: String,
    /// `target` or `abort` (a CSS class).
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// x or y, depending on the axis.
    pub at: String,
    pub label: String,
}

/// A detected deviation on the series: a ring at the day's value, its numbers as a tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub x: String,
    pub y: String,
    pub title: String,
    /// `harmful` or `helpful` (a CSS class).
    pub kind: &'static str,
}

/// The plot's scale, kept to place marks after the fact.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    first: NaiveDate,
    days: f64,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn x(&self, d: NaiveDate) -> f64 {
        LEFT + (WIDTH - RIGHT - LEFT) * ((d - self.first).num_days() as f64 / self.days)
    }

    fn y(&self, v: f64) -> f64 {
        let (y0, y1) = (TOP, HEIGHT - BOTTOM);
        y1 - (y1 - y0) * ((v.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo))
    }
}

/// What the template draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: String,
    pub height: String,
    pub plot_left: String,
    pub plot_right: String,
    pub plot_top: String,
    pub plot_bottom: String,
    /// `x,y x,y …` for a polyline.
    pub points: String,
    /// The newest point and its value.
    pub last: Option<(String, String, String)>,
    pub rules: Vec<Rule>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// The label x of the rules (right of the plot).
    pub label_x: String,
    pub marks: Vec<Mark>,
    scale: Scale,
}

fn c(v: f64) -> String {
    format!("{v:.1}")
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * p
}

/// A number as a reader scans it: 430,892 → "430.9k", 0.258 → "0.258".
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Chart {
    /// The chart of `series` (by day, oldest first) with a target and labelled thresholds;
    /// `None` without data.
    pub fn daily(
        series: &[(NaiveDate, f64)],
        target: Option<(&str, f64)>,
        thresholds: &[(String, f64)],
    ) -> Option<Chart> {
        let (first, last) = (series.first()?, series.last()?);
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let lines = target
            .iter()
            .map(|(_, v)| *v)
            .chain(thresholds.iter().map(|(_, v)| *v));
        for v in series.iter().map(|(_, v)| *v).chain(lines) {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            return None;
        }
        if (hi - lo).abs() < f64::EPSILON {
            let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
            lo -= pad;
            hi += pad;
        }
        let step = nice_step((hi - lo) / 4.0);
        let lo = (lo / step).floor() * step;
        let hi = (hi / step).ceil() * step;

        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (TOP, HEIGHT - BOTTOM);
        let days = (last.0 - first.0).num_days().max(1) as f64;
        let scale = Scale {
            first: first.0,
            days,
            lo,
            hi,
        };
        let x = |d: NaiveDate| scale.x(d);
        let y = |v: f64| scale.y(v);

        let points = series
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(d, v)| format!("{},{}", c(x(*d)), c(y(*v))))
            .collect::<Vec<_>>()
            .join(" ");
        let mut rules = Vec::new();
        if let Some((label, v)) = target {
            rules.push(Rule {
                y: c(y(v)),
                label: format!("{label} {}", compact(v)),
                kind: "target",
            });
        }
        for (label, v) in thresholds {
            rules.push(Rule {
                y: c(y(*v)),
                label: format!("{label} {}", compact(*v)),
                kind: "abort",
            });
        }
        let mut y_ticks = Vec::new();
        let mut v = lo;
        while v <= hi + step / 2.0 {
            y_ticks.push(Tick {
                at: c(y(v)),
                label: compact(v),
            });
            v += step;
        }
        // About six date labels, always the first and the last day.
        let every = ((days / 6.0).ceil() as i64).max(1);
        let mut x_ticks: Vec<Tick> = series
            .iter()
            .filter(|(d, _)| (*d - first.0).num_days() % every == 0)
            .map(|(d, _)| Tick {
                at: c(x(*d)),
                label: d.format("%b %d").to_string(),
            })
            .collect();
        if (last.0 - first.0).num_days() % every != 0 {
            x_ticks.push(Tick {
                at: c(x(last.0)),
                label: last.0.format("%b %d").to_string(),
            });
        }
        Some(Chart {
            width: c(WIDTH),
            height: c(HEIGHT),
            plot_left: c(x0),
            plot_right: c(x1),
            plot_top: c(y0),
            plot_bottom: c(y1),
            points,
            last: Some((c(x(last.0)), c(y(last.1)), compact(last.1))),
            rules,
            y_ticks,
            x_ticks,
            label_x: c(x1 + 8.0),
            marks: Vec::new(),
            scale,
        })
    }

    /// Marks the days in `marks` (day, observed value, tooltip, harmful) that fall on the
    /// plot; the others are left out.
    pub fn with_marks(mut self, marks: &[(NaiveDate, f64, String, bool)]) -> Chart {
        let last = self.scale.first + chrono::Days::new(self.scale.days as u64);
        self.marks = marks
            .iter()
            .filter(|(d, v, _, _)| *d >= self.scale.first && *d <= last && v.is_finite())
            .map(|(d, v, title, harmful)| Mark {
                x: c(self.scale.x(*d)),
                y: c(self.scale.y(*v)),
                title: title.clone(),
                kind: if *harmful { "harmful" } else { "helpful" },
            })
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn the_series_the_target_and_the_thresholds_share_one_scale() {
        let series = [(day(1), 400.0), (day(2), 450.0), (day(3), 430.0)];
        let ch = Chart::daily(
            &series,
            Some(("target", 900.0)),
            &[("abort if <".into(), 387.8)],
        )
        .unwrap();
        assert_eq!(ch.points.split(' ').count(), 3);
        // The target is the highest value: at the top of the scale; the threshold below all.
        let target: f64 = ch.rules[0].y.parse().unwrap();
        let abort: f64 = ch.rules[1].y.parse().unwrap();
        let ys: Vec<f64> = ch
            .points
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(ys.iter().all(|y| *y > target && *y < abort));
        assert_eq!(ch.rules[1].kind, "abort");
        assert!(ch.rules[0].label.ends_with("900"));
        assert_eq!(ch.x_ticks.first().unwrap().label, "Nov 01");
        assert_eq!(ch.x_ticks.last().unwrap().label, "Nov 03");
    }

    #[test]
    fn no_data_no_chart_and_a_flat_series_still_has_a_scale() {
        assert!(Chart::daily(&[], None, &[]).is_none());
        let marked = Chart::daily(&[(day(1), 5.0), (day(3), 2.0)], None, &[])
            .unwrap()
            .with_marks(&[
                (day(3), 2.0, "pipeline_total -60%".into(), true),
                (day(9), 1.0, "after the plot".into(), true),
            ]);
        assert_eq!(marked.marks.len(), 1);
        assert_eq!(marked.marks[0].kind, "harmful");
        assert_eq!(marked.marks[0].x, marked.plot_right);
        let ch = Chart::daily(&[(day(1), 5.0)], None, &[]).unwrap();
        assert!(ch.y_ticks.len() >= 2);
        assert_eq!(compact(430_892.0), "430.9k");
        assert_eq!(compact(0.258), "0.258");
        assert_eq!(compact(2_500_000.0), "2.50M");
    }
}
