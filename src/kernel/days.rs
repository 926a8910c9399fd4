//! Calendar arithmetic on days since the common era: the integers the rules subtract and
//! regress on, and the weekday and month-end positions the rhythm check reads.

use chrono::{Datelike, NaiveDate};

/// Days since the common era: dates become integers the rules can subtract and regress on.
pub fn day(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// `day` for many dates that mostly share a year (an input's dates): the count of the days
/// before the year is taken once per year, and a date adds its ordinal to it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Days {
    /// (year, days before its first day).
    year: Option<(i32, i32)>,
}

impl Days {
    pub fn of(&mut self, d: NaiveDate) -> i32 {
        let y = d.year();
        let before = match self.year {
            Some((year, before)) if year == y => before,
            _ => {
                let before = day(d) - d.ordinal() as i32;
                self.year = Some((y, before));
                before
            }
        };
        before + d.ordinal() as i32
    }
}

pub fn date_string(d: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(d)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn weekday_name(d: i32) -> &'static str {
    // Day 1 of the common era (0001-01-01) is a Monday.
    ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][(d.rem_euclid(7)) as usize]
}

/// Whether `d` is the last business day (Mon-Fri) of its month.
pub fn last_business_day(d: i32) -> bool {
    let Some(date) = NaiveDate::from_num_days_from_ce_opt(d) else {
        return false;
    };
    if date.weekday().number_from_monday() > 5 {
        return false;
    }
    (1..=3).all(|k| {
        NaiveDate::from_num_days_from_ce_opt(d + k)
            .is_none_or(|n| n.month() != date.month() || n.weekday().number_from_monday() > 5)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p1_the_last_business_day_of_a_month() {
        let d = |s: &str| day(crate::contract::parse_date(s).unwrap());
        assert!(last_business_day(d("2026-10-30"))); // a Friday
        assert!(!last_business_day(d("2026-10-31"))); // a Saturday
        assert!(!last_business_day(d("2026-11-26")));
        assert!(last_business_day(d("2026-11-30"))); // a Monday
        assert_eq!(weekday_name(d("2026-11-25")), "Wed");
    }

    #[test]
    fn days_counted_per_year_are_the_days_from_the_common_era() {
        let mut days = Days::default();
        let mut date = NaiveDate::from_ymd_opt(-401, 12, 25).unwrap();
        let end = NaiveDate::from_ymd_opt(2401, 1, 5).unwrap();
        while date <= end {
            assert_eq!(days.of(date), day(date), "{date}");
            // Back and forth across years too.
            let back = date - chrono::Duration::days(400);
            assert_eq!(days.of(back), day(back), "{back}");
            date += chrono::Duration::days(13);
        }
    }
}
