//! Robust trend of a daily series: Tukey's resistant line, points beyond `OUTLIER_K` robust
//! standard deviations dropped, least squares on the rest, and a significance test against the
//! series' own noise. O(n) per series (medians by selection), so it fits the kernel's budget.

/// Residuals beyond this many robust standard deviations (1.4826 × MAD) are outliers: the
/// Iglewicz–Hoaglin cut-off for a modified z-score.
pub const OUTLIER_K: f64 = 3.5;
/// A slope counts only when it is at least this many standard errors from 0 (about 95%).
pub const SIGNIFICANT_T: f64 = 2.0;
/// MAD × 1.4826 estimates the standard deviation of normal noise.
pub const MAD_SCALE: f64 = 1.4826;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Change per day of the fitted line.
    pub slope: f64,
    /// The fitted line at the last day.
    pub level: f64,
    /// (fitted last − fitted first) / |median|: the relative move over the points' span.
    pub rel: f64,
    /// Robust standard deviation of the residuals around the line: the day-to-day noise.
    pub noise: f64,
    /// |slope| / its standard error (infinite on a noiseless line with a slope).
    pub t: f64,
    pub significant: bool,
    /// Points used, and outliers left out.
    pub used: usize,
    pub outliers: usize,
}

/// The median of `v` (reordered in place); None when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo + hi) / 2.0)
}

/// 1.4826 × the median absolute deviation from `center`.
pub fn robust_sd(values: impl Iterator<Item = f64>, center: f64) -> f64 {
    let mut d: Vec<f64> = values.map(|x| (x - center).abs()).collect();
    median(&mut d).map_or(0.0, |m| m * MAD_SCALE)
}

/// Tukey's resistant line: the slope between the medians of the first and last thirds, the
/// intercept the median of what remains.
fn resistant_line(p: &[(f64, f64)]) -> (f64, f64) {
    let n = p.len();
    let third = n.div_ceil(3);
    let med = |it: &mut dyn Iterator<Item = f64>| {
        let mut v: Vec<f64> = it.collect();
        median(&mut v).unwrap_or(0.0)
    };
    let (xl, yl) = (
        med(&mut p[..third].iter().map(|q| q.0)),
        med(&mut p[..third].iter().map(|q| q.1)),
    );
    let (xr, yr) = (
        med(&mut p[n - third..].iter().map(|q| q.0)),
        med(&mut p[n - third..].iter().map(|q| q.1)),
    );
    let b = if xr > xl { (yr - yl) / (xr - xl) } else { 0.0 };
    let a = med(&mut p.iter().map(|q| q.1 - b * q.0));
    (a, b)
}

/// The robust trend of points `(day, value)` sorted by day; None with fewer than 3 points.
pub fn trend(points: &[(i32, f64)]) -> Option<Trend> {
    if points.len() < 3 {
        return None;
    }
    let p: Vec<(f64, f64)> = points.iter().map(|&(d, y)| (f64::from(d), y)).collect();
    let (a, b) = resistant_line(&p);
    let resid = |q: &(f64, f64)| q.1 - (a + b * q.0);
    let sd = robust_sd(p.iter().map(resid), 0.0);
    let scale = p.iter().map(|q| q.1.abs()).fold(0.0, f64::max).max(1e-12);
    let cut = OUTLIER_K * sd.max(1e-9 * scale);
    let kept: Vec<(f64, f64)> = p
        .iter()
        .copied()
        .filter(|q| resid(q).abs() <= cut)
        .collect();
    let kept = if kept.len() >= 3 { kept } else { p.clone() };
    let n = kept.len() as f64;
    let mx = kept.iter().map(|q| q.0).sum::<f64>() / n;
    let my = kept.iter().map(|q| q.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for q in &kept {
        sxy += (q.0 - mx) * (q.1 - my);
        sxx += (q.0 - mx) * (q.0 - mx);
    }
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let noise = robust_sd(kept.iter().map(|q| q.1 - (my + slope * (q.0 - mx))), 0.0);
    let se = noise / sxx.sqrt();
    let t = if se > 1e-12 * scale {
        slope.abs() / se
    } else if slope.abs() > 1e-12 * scale {
        f64::INFINITY
    } else {
        0.0
    };
    let mut ys: Vec<f64> = kept.iter().map(|q| q.1).collect();
    let mid = median(&mut ys).unwrap_or(0.0);
    let span = p[p.len() - 1].0 - p[0].0;
    let rel = if mid != 0.0 {
        slope * span / mid.abs()
    } else {
        0.0
    };
    let last = p[p.len() - 1].0;
    let out = Trend {
        slope,
        level: my + slope * (last - mx),
        rel,
        noise,
        t,
        significant: t >= SIGNIFICANT_T,
        used: kept.len(),
        outliers: p.len() - kept.len(),
    };
    (out.slope.is_finite() && out.level.is_finite() && out.rel.is_finite()).then_some(out)
}

/// A newest point this many robust SDs from the recent median is a suspected sync glitch.
pub const GLITCH_K: f64 = 8.0;
/// The robust SD a glitch is judged against is at least this share of the median, so a very
/// smooth series still needs a jump of 8 × 2.5% = 20% in one day.
pub const GLITCH_MIN_SD_SHARE: f64 = 0.025;
/// History that varies more than this (robust SD / median) is too noisy to call a glitch.
pub const STABLE_MAX_CV: f64 = 0.25;
/// Points of history a glitch is judged on: at least 7, the last 14 at most.
pub const GLITCH_MIN_HISTORY: usize = 7;
pub const GLITCH_HISTORY: usize = 14;

/// Whether the newest point breaks a stable history: a sudden 0 after only positive values,
/// or a jump of more than `GLITCH_K` robust SDs from the recent median. Gives that median.
pub fn glitch(points: &[(i32, f64)]) -> Option<f64> {
    let (last, hist) = points.split_last()?;
    if hist.len() < GLITCH_MIN_HISTORY {
        return None;
    }
    let recent = &hist[hist.len().saturating_sub(GLITCH_HISTORY)..];
    let mut ys: Vec<f64> = recent.iter().map(|p| p.1).collect();
    let med = median(&mut ys)?;
    if med <= 0.0 {
        return None;
    }
    let sd = robust_sd(recent.iter().map(|p| p.1), med);
    if sd > STABLE_MAX_CV * med {
        return None;
    }
    let zero = last.1 == 0.0 && recent.iter().all(|p| p.1 > 0.0);
    let jump = (last.1 - med).abs() > GLITCH_K * sd.max(GLITCH_MIN_SD_SHARE * med);
    (zero || jump).then_some(med)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(f: impl Fn(i32) -> f64) -> Vec<(i32, f64)> {
        (0..30).map(|d| (d, f(d))).collect()
    }

    #[test]
    fn medians_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn a_single_spike_does_not_move_the_trend() {
        // Flat at 100 with day one at 50 (an import glitch): no trend at all.
        let t = trend(&pts(|d| if d == 0 { 50.0 } else { 100.0 })).unwrap();
        assert_eq!((t.slope, t.outliers, t.significant), (0.0, 1, false));
    }

    #[test]
    fn a_move_inside_the_noise_is_not_significant() {
        // ±2% alternating noise around a 1% rise over the window.
        let t = trend(&pts(|d| {
            100.0 + f64::from(d) / 29.0 + if d.rem_euclid(2) == 0 { 2.0 } else { -2.0 }
        }))
        .unwrap();
        assert!(!t.significant, "{t:?}");
        // The same rise of 20%: significant.
        let t = trend(&pts(|d| {
            100.0 + 20.0 * f64::from(d) / 29.0 + if d.rem_euclid(2) == 0 { 2.0 } else { -2.0 }
        }))
        .unwrap();
        assert!(t.significant && (t.rel - 0.2 / 1.1).abs() < 0.03, "{t:?}");
    }

    #[test]
    fn a_sudden_zero_or_a_far_jump_after_a_stable_history_is_a_glitch() {
        let with_last = |v: f64| {
            let mut p = pts(|d| 1_100_000.0 + f64::from(d % 3) * 5_000.0);
            p[29].1 = v;
            p
        };
        assert_eq!(glitch(&with_last(0.0)), Some(1_105_000.0));
        assert!(glitch(&with_last(3_000_000.0)).is_some());
        // A 10% move is within a smooth series' band; a noisy history has no band at all.
        assert_eq!(glitch(&with_last(1_000_000.0)), None);
        let noisy = pts(|d| if d.rem_euclid(2) == 0 { 10.0 } else { 100.0 });
        assert_eq!(glitch(&noisy), None);
    }

    #[test]
    fn a_clean_line_is_fitted_exactly() {
        let t = trend(&pts(|d| 1000.0 - 10.0 * f64::from(d))).unwrap();
        assert!((t.slope + 10.0).abs() < 1e-9 && (t.level - 710.0).abs() < 1e-6);
        assert!(t.significant && t.noise < 1e-9);
    }
}
