//! Calendar arithmetic on days since the common era: the integers the rules subtract and
//! regress on, and the weekday and month-end positions the rhythm check reads.

use chrono::{Datelike, NaiveDate};

/// Days since the common era: dates become integers the rules can subtract and regress on.
pub fn day(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
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
}
