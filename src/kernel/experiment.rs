//! Two-proportion power analysis and experiment sizing.

/// qnorm(1 - 0.05 / 2): two-sided alpha = 0.05.
pub const Z_ALPHA: f64 = 1.959_963_984_540_054;
/// qnorm(0.8): power = 0.8.
pub const Z_BETA: f64 = 0.841_621_233_572_914_3;

/// Per-arm sample size to tell `p1` from `p2`, as R's `power.prop.test` solves it
/// (pooled variance under the null): n = (z_a*sqrt(2*pbar*(1-pbar)) + z_b*sqrt(p1q1 + p2q2))^2
/// / (p1 - p2)^2, rounded up. None unless both rates lie strictly inside (0, 1) and differ.
pub fn sample_size_per_arm(p1: f64, p2: f64) -> Option<u64> {
    let inside = |p: f64| p > 0.0 && p < 1.0;
    if !inside(p1) || !inside(p2) || p1 == p2 {
        return None;
    }
    let pbar = (p1 + p2) / 2.0;
    let a = Z_ALPHA * (2.0 * pbar * (1.0 - pbar)).sqrt();
    let b = Z_BETA * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    let n = ((a + b) / (p1 - p2)).powi(2);
    (n.is_finite() && n < 1e12).then(|| n.ceil() as u64)
}

/// The alternative rate for a relative effect: up when it stays below 1, else down.
pub fn alternative(p1: f64, mde: f64) -> f64 {
    let up = p1 * (1.0 + mde);
    if up < 1.0 { up } else { p1 * (1.0 - mde) }
}

#[derive(Debug, Clone)]
pub struct Sizing {
    pub baseline: f64,
    pub alternative: f64,
    pub power_n: u64,
    pub n: u64,
    pub treatment_pct: f64,
    /// Days to reach `n` per arm; None when the daily volume is unknown.
    pub days: Option<u32>,
}

/// Sizes an experiment. `Err(reason)` when it cannot run within `max_days`.
pub fn size(
    baseline: f64,
    mde: f64,
    min_sample: u64,
    treatment_pct: f64,
    daily_volume: Option<f64>,
    max_days: u32,
) -> Result<Sizing, String> {
    let alt = alternative(baseline, mde);
    let power_n = sample_size_per_arm(baseline, alt)
        .ok_or_else(|| format!("baseline rate {baseline} admits no power analysis"))?;
    let n = power_n.max(min_sample);
    if treatment_pct <= 0.0 {
        return Err("the exposure cap leaves no treatment group".into());
    }
    let days = match daily_volume {
        Some(v) if v > 0.0 => {
            let d = (n as f64 / (v * treatment_pct / 100.0)).ceil();
            if d > f64::from(max_days) {
                return Err(format!(
                    "needs {n} per arm at {v:.2}/day with {treatment_pct}% in treatment: {} days \
                     > {max_days}",
                    if d < 1e9 { d as u64 } else { u64::MAX }
                ));
            }
            Some(d.max(1.0) as u32)
        }
        Some(_) => return Err("no daily volume to sample from".into()),
        None => None,
    };
    Ok(Sizing {
        baseline,
        alternative: alt,
        power_n,
        n,
        treatment_pct,
        days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_power_prop_test_vectors() {
        assert_eq!(sample_size_per_arm(0.10, 0.12), Some(3841));
        assert_eq!(sample_size_per_arm(0.05, 0.055), Some(31234));
        assert_eq!(sample_size_per_arm(0.5, 0.5), None);
        assert_eq!(sample_size_per_arm(0.0, 0.1), None);
    }

    #[test]
    fn sixty_day_limit() {
        assert!(size(0.05, 0.1, 0, 20.0, Some(10.0), 60).is_err());
        let s = size(0.10, 0.2, 0, 50.0, Some(1000.0), 60).unwrap();
        assert_eq!(s.n, 3841);
        assert_eq!(s.days, Some(8));
    }
}
