//! The sample-size test vectors of issue 3 (R's power.prop.test, alpha 0.05 two-sided, power 0.8).

use revenue_os::kernel::experiment::{alternative, sample_size_per_arm, size};

#[test]
fn baseline_010_plus_20pct_needs_3841_per_arm() {
    assert_eq!(
        sample_size_per_arm(0.10, alternative(0.10, 0.20)),
        Some(3841)
    );
}

#[test]
fn baseline_005_plus_10pct_needs_31234_per_arm() {
    assert_eq!(
        sample_size_per_arm(0.05, alternative(0.05, 0.10)),
        Some(31234)
    );
}

#[test]
fn config_minimum_wins_when_larger_and_sixty_days_is_the_limit() {
    let s = size(0.10, 0.20, 5000, 20.0, None, 60).unwrap();
    assert_eq!((s.power_n, s.n, s.days), (3841, 5000, None));
    // 3,841 per arm at 100 units/day with 20% in treatment: 193 days > 60.
    assert!(size(0.10, 0.20, 0, 20.0, Some(100.0), 60).is_err());
    assert_eq!(
        size(0.10, 0.20, 0, 20.0, Some(400.0), 60).unwrap().days,
        Some(49)
    );
}
