use super::*;
use crate::contract::Catalog;
use proptest::prelude::*;

fn catalog() -> Catalog {
    Catalog::embedded().unwrap()
}

fn day(i: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 7).unwrap() + chrono::Duration::days(i)
}

/// A weekly series with ±5% deterministic wobble; the newest day's value is `last`.
fn weekly(n: i64, last: Option<f64>) -> Vec<(NaiveDate, f64)> {
    let mut v: Vec<(NaiveDate, f64)> = (0..n)
        .map(|i| {
            let base = if i % 7 >= 5 { 60.0 } else { 100.0 };
            // Period 11, so the wobble is noise to a weekly model, not pattern.
            let wobble = [
                1.0, 1.04, 0.97, 1.02, 0.95, 1.03, 0.99, 1.05, 0.96, 1.01, 0.98,
            ];
            let wobble = wobble[(i * 3 % 11) as usize];
            (day(i), base * wobble)
        })
        .collect();
    if let (Some(x), Some(p)) = (last, v.last_mut()) {
        p.1 = x;
    }
    v
}

fn assess_id(id: &str, s: &[(NaiveDate, f64)]) -> Option<Assessment> {
    assess(catalog().metric(id).unwrap(), s, Params::default())
}

#[test]
fn under_seven_days_says_nothing() {
    assert_eq!(assess_id("leads_created", &weekly(6, None)), None);
    assert!(assess_id("leads_created", &weekly(7, None)).is_some());
}

#[test]
fn method_by_length() {
    let a = assess_id("leads_created", &weekly(20, None)).unwrap();
    assert_eq!((a.method, a.days_used), (Method::RollingMedian, 19));
    let a = assess_id("leads_created", &weekly(21, None)).unwrap();
    assert_eq!((a.method, a.days_used), (Method::MstlEts, 20));
}

#[test]
fn a_normal_day_is_inside_the_band() {
    for n in [21, 30, 60, 90] {
        let a = assess_id("leads_created", &weekly(n, None)).unwrap();
        assert_eq!(a.surprise, None, "{n}: {a:?}");
        assert!(a.lower <= a.observed && a.observed <= a.upper, "{n}: {a:?}");
    }
}

#[test]
fn the_weekly_pattern_is_expected_not_flagged() {
    // The newest day is a Saturday (position 61 % 7 == 5): 60 is normal there.
    let a = assess_id("leads_created", &weekly(62, None)).unwrap();
    assert!((a.expected - 60.0).abs() < 6.0, "{a:?}");
    assert_eq!(a.surprise, None);
}

#[test]
fn a_40_percent_drop_is_harmful_for_an_up_metric() {
    // Position 59 is a weekday: expected about 100.
    let a = assess_id("leads_created", &weekly(60, Some(60.0))).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Harmful), "{a:?}");
    assert!(a.relative_change() < -0.3);
    assert_eq!(pick_trigger(std::slice::from_ref(&a)), Some(&a));
}

#[test]
fn the_same_drop_is_helpful_for_a_down_metric() {
    let a = assess_id("cac_blended", &weekly(60, Some(60.0))).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Helpful), "{a:?}");
    assert_eq!(pick_trigger(std::slice::from_ref(&a)), None);
    let a = assess_id("cac_blended", &weekly(60, Some(170.0))).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Harmful), "{a:?}");
}

#[test]
fn a_change_below_the_practical_minimum_is_not_a_deviation() {
    // A perfectly flat history: the band is zero wide, yet 4% is below the 10% minimum.
    let flat: Vec<_> = (0..30)
        .map(|i| (day(i), if i == 29 { 96.0 } else { 100.0 }))
        .collect();
    let a = assess_id("leads_created", &flat).unwrap();
    assert!(a.severity > 1.0);
    assert_eq!(a.surprise, None);
    let mut flat = flat;
    flat[29].1 = 85.0;
    assert_eq!(
        assess_id("leads_created", &flat).unwrap().surprise,
        Some(Surprise::Harmful)
    );
}

#[test]
fn fractions_use_points_not_percent() {
    // win_rate 0.30 → 0.27 is 3 points: below the 5-point minimum however tight the band.
    let s: Vec<_> = (0..30)
        .map(|i| (day(i), if i == 29 { 0.27 } else { 0.30 }))
        .collect();
    assert_eq!(assess_id("win_rate", &s).unwrap().surprise, None);
    let s: Vec<_> = (0..30)
        .map(|i| (day(i), if i == 29 { 0.22 } else { 0.30 }))
        .collect();
    let a = assess_id("win_rate", &s).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Harmful));
    assert!(!a.log_scale);
}

#[test]
fn gaps_are_gaps_not_zeros() {
    let mut s = weekly(60, None);
    // Drop ten days in the middle and three inside the error window.
    s.retain(|(d, _)| {
        let i = (*d - day(0)).num_days();
        !(20..30).contains(&i) && ![50, 51, 55].contains(&i)
    });
    let a = assess_id("leads_created", &s).unwrap();
    assert_eq!(a.surprise, None, "{a:?}");
    assert_eq!(a.days_used, 46);
    assert!(a.log_scale);
}

#[test]
fn unordered_duplicate_and_non_finite_points() {
    let mut s = weekly(30, None);
    s.reverse();
    s.push((day(3), f64::NAN));
    s.push((day(4), f64::INFINITY));
    let a = assess_id("leads_created", &s).unwrap();
    assert_eq!(a.day, day(29));
    assert_eq!(a.days_used, 29);
}

#[test]
fn a_zero_after_a_positive_history_is_a_drop() {
    let a = assess_id("leads_created", &weekly(40, Some(0.0))).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Harmful), "{a:?}");
    assert!(a.severity.is_finite());
}

#[test]
fn dimensioned_metrics_are_skipped() {
    assert_eq!(assess_id("cac_by_channel", &weekly(30, None)), None);
}

#[test]
fn band_metrics_are_harmful_both_ways() {
    let a = assess_id("pipeline_coverage_ratio", &weekly(60, Some(170.0))).unwrap();
    assert_eq!(a.surprise, Some(Surprise::Harmful));
}

#[test]
fn tenant_picks_the_most_severe_harmful_metric_of_the_day() {
    let cat = catalog();
    let leads = weekly(60, Some(55.0));
    let mqls = weekly(60, Some(40.0));
    let stale = weekly(59, Some(10.0)); // its newest day is not the load's day
    let cac = weekly(60, Some(20.0)); // helpful
    let series: Vec<(&str, &[(NaiveDate, f64)])> = vec![
        ("leads_created", &leads),
        ("mqls_created", &mqls),
        ("pipeline_total", &stale),
        ("cac_blended", &cac),
        ("no_such_metric", &leads),
    ];
    let all = assess_tenant(&cat, day(59), series, Params::default());
    assert_eq!(all.len(), 3);
    assert_eq!(pick_trigger(&all).unwrap().metric_id, "mqls_created");
}

#[test]
fn a_wider_k_flags_less() {
    let s = weekly(60, Some(75.0));
    let def = catalog().metric("leads_created").unwrap().clone();
    let tight = assess(&def, &s, Params { k: 1.0 }).unwrap();
    let wide = assess(&def, &s, Params { k: 50.0 }).unwrap();
    assert!(tight.upper - tight.lower < wide.upper - wide.lower);
    assert_eq!(wide.surprise, None);
    assert_eq!(assess(&def, &s, Params { k: f64::NAN }), None);
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e12..1e12f64,
        0.0..1.0f64,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any series, any metric, any k: no panic, and what comes out is finite.
    #[test]
    fn never_panics(
        points in prop::collection::vec((0i64..400, value()), 0..140),
        metric in prop::sample::select(vec![
            "leads_created", "win_rate", "cac_blended", "missing_attribution_pct",
            "pipeline_coverage_ratio", "channel_contribution",
        ]),
        k in prop_oneof![0.1..20.0f64, Just(0.0), Just(-1.0), Just(f64::NAN)],
    ) {
        let s: Vec<_> = points.into_iter().map(|(i, v)| (day(i), v)).collect();
        let def = catalog().metric(metric).unwrap().clone();
        if let Some(a) = assess(&def, &s, Params { k }) {
            prop_assert!(a.expected.is_finite() && a.lower.is_finite() && a.upper.is_finite());
            prop_assert!(a.severity.is_finite() && a.severity >= 0.0);
            prop_assert!(a.lower <= a.upper);
            prop_assert!(a.days_used + 1 >= MIN_DAYS);
        }
    }

    /// A day inside the band is never a deviation, whatever the series.
    #[test]
    fn inside_the_band_is_quiet(
        values in prop::collection::vec(1.0..1000.0f64, 7..100),
    ) {
        let s: Vec<_> = values.iter().enumerate().map(|(i, v)| (day(i as i64), *v)).collect();
        let def = catalog().metric("leads_created").unwrap().clone();
        let a = assess(&def, &s, Params::default()).unwrap();
        if a.lower < a.observed && a.observed < a.upper {
            prop_assert_eq!(a.surprise, None);
        }
    }
}
