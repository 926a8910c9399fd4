//! The primitives every wire document is parsed with: dates, timestamps, date ranges and
//! size limits. Below `validate`, `trigger` and `report`, so none of them imports another
//! for these.

use super::types::AnalysisWindow;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

/// Length of the window a trigger without `analysis_window` gets.
pub const DEFAULT_WINDOW_DAYS: u64 = 30;

/// The longest `trigger.source` (and report `source`) accepted, in bytes: a name such as
/// `cron_daily`, never a payload. It is stored with every cycle.
pub const MAX_SOURCE_BYTES: usize = 200;

/// An inclusive pair of dates with `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

impl DateRange {
    pub fn new(start: NaiveDate, end: NaiveDate) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// The 30 days ending yesterday (UTC) of `at`: the window of a trigger that names none,
    /// relative to when it was raised rather than when a backlog gets to it.
    pub fn default_for(at: DateTime<Utc>) -> Self {
        let today = at.date_naive();
        let end = today.checked_sub_days(Days::new(1)).unwrap_or(today);
        let start = end
            .checked_sub_days(Days::new(DEFAULT_WINDOW_DAYS - 1))
            .unwrap_or(end);
        Self { start, end }
    }

    /// Parses a wire window; `None` unless both dates are `YYYY-MM-DD` and ordered.
    pub fn parse(w: &AnalysisWindow) -> Option<Self> {
        Self::new(parse_date(&w.start_date)?, parse_date(&w.end_date)?)
    }

    pub fn start(&self) -> NaiveDate {
        self.start
    }

    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// Days in the range, both ends included.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The wire form.
    pub fn to_window(&self) -> AnalysisWindow {
        AnalysisWindow {
            start_date: format_date(self.start),
            end_date: format_date(self.end),
        }
    }
}

/// `YYYY-MM-DD`; called per row on large tenants, so no strftime parsing.
pub fn format_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    // Exactly YYYY-MM-DD (chrono's parser would also take "2024-1-5"), read digit by digit:
    // this runs for every row of a tenant, so it avoids the general format parser.
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_date_takes_only_real_yyyy_mm_dd() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2023-02-29",
            "2024-1-05",
            "2024-01-5",
            "24-01-05",
            "2024/01/05",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-0a-01",
            "+024-01-01",
            "2024-01-01T",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_range_counts_both_ends() {
        let d = |s| parse_date(s).unwrap();
        let r = DateRange::new(d("2026-11-01"), d("2026-11-30")).unwrap();
        assert_eq!(r.days(), 30);
        assert!(DateRange::new(d("2026-11-02"), d("2026-11-01")).is_none());
    }
}
