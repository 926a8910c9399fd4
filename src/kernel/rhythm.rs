//! Principle 1: a weekly or monthly rhythm is not a glitch. A value out of line with its
//! series is explained by its own weekday's or month-end's earlier values, or by the tenant's
//! own `new_booking` events.

use super::days::{date_string, day, last_business_day, weekday_name};
use super::stats;
use crate::contract::Checked;

/// Points of the same position needed before a position explains a value (principle 1).
pub const RHYTHM_MIN_PEERS: usize = 2;
/// A value is in line with its position's peers within this share of their median (or of the
/// series' typical level when the peers' median is 0).
pub const RHYTHM_TOLERANCE: f64 = 0.25;
/// The tenant's own `new_booking` events explain a `bookings_new` value within this share.
pub const EVENTS_MATCH: f64 = 0.01;

/// Why the newest point of `pts` (out of line with the series' `typical` level) is no glitch:
/// in line with the same weekday's earlier points, with earlier month-end points when it is
/// the last business day of its month, or equal to the day's `new_booking` events
/// (`bookings_new`). None when nothing explains it.
pub fn rhythm(metric: &str, pts: &[(i32, f64)], typical: f64, checked: &Checked) -> Option<String> {
    let (last, hist) = pts.split_last()?;
    let (d, x) = *last;
    let in_line = |peers: &mut Vec<f64>| -> Option<f64> {
        if peers.len() < RHYTHM_MIN_PEERS {
            return None;
        }
        let m = stats::median(peers)?;
        let scale = if m.abs() > 0.0 {
            m.abs()
        } else {
            typical.abs()
        };
        ((x - m).abs() <= RHYTHM_TOLERANCE * scale).then_some(m)
    };
    let mut same_day: Vec<f64> = hist
        .iter()
        .filter(|p| (d - p.0) % 7 == 0)
        .map(|p| p.1)
        .collect();
    let n = same_day.len();
    if let Some(m) = in_line(&mut same_day) {
        return Some(format!(
            "{metric} {} on {} ({}) is {} against the series' typical {}, but in line with \
             the median {} of the {n} earlier {}s: a weekly rhythm, not a glitch",
            super::text::num(x),
            date_string(d),
            weekday_name(d),
            super::text::num(x),
            super::text::num(typical),
            super::text::num(m),
            weekday_name(d)
        ));
    }
    if last_business_day(d) {
        let mut ends: Vec<f64> = hist
            .iter()
            .filter(|p| last_business_day(p.0))
            .map(|p| p.1)
            .collect();
        let n = ends.len();
        if let Some(m) = in_line(&mut ends) {
            return Some(format!(
                "{metric} {} on {} (last business day of the month) is against the series' \
                 typical {}, but in line with the median {} of the {n} earlier month ends: a \
                 monthly rhythm, not a glitch",
                super::text::num(x),
                date_string(d),
                super::text::num(typical),
                super::text::num(m)
            ));
        }
    }
    if metric == "bookings_new" {
        let booked: f64 = checked
            .revenue_events()
            .filter(|(e, date)| day(*date) == d && e.kind == "new_booking")
            .map(|(e, _)| e.amount)
            .sum();
        if booked > 0.0 && (booked - x).abs() <= EVENTS_MATCH * x.abs() {
            return Some(format!(
                "bookings_new {} on {} is against the series' typical {}, but the tenant's own \
                 new_booking events that day add up to {}: real bookings, not a glitch",
                super::text::num(x),
                date_string(d),
                super::text::num(typical),
                super::text::num(booked)
            ));
        }
    }
    None
}
