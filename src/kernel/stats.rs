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
    if n <= SMALL {
        return Some(small_median(v));
    }
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo + hi) / 2.0)
}

/// Up to this many values (a window of daily points) a median selects integer keys on the
/// stack: several times cheaper than selecting the values in place with `total_cmp`, and run
/// for every series of every cycle.
const SMALL: usize = 64;

/// `f64::total_cmp`'s order as an integer: ordering the keys orders the values exactly as
/// selecting with `total_cmp` does, so the median is the same to the bit.
fn total_key(x: f64) -> i64 {
    let k = x.to_bits() as i64;
    k ^ ((((k >> 63) as u64) >> 1) as i64)
}

fn from_key(k: i64) -> f64 {
    f64::from_bits((k ^ ((((k >> 63) as u64) >> 1) as i64)) as u64)
}

/// The median of 1..=SMALL values, `v` left as it was.
fn small_median(v: &[f64]) -> f64 {
    let mut buf = [0i64; SMALL];
    let keys = &mut buf[..v.len()];
    for (k, x) in keys.iter_mut().zip(v) {
        *k = total_key(*x);
    }
    key_median(keys)
}

/// The median of a non-empty slice of keys (reordered): the middle key, or the mean of the
/// two middle ones. Selecting (not sorting) picks the same keys as a sort would: integers
/// have one order.
fn key_median(keys: &mut [i64]) -> f64 {
    let n = keys.len();
    select_small(keys, n / 2);
    let hi = from_key(keys[n / 2]);
    if n % 2 == 1 {
        return hi;
    }
    // Every key below the middle one is before it: their largest is the next key down.
    (from_key(max_key(&keys[..n / 2])) + hi) / 2.0
}

/// Puts the `k`-th smallest key at `k`, the smaller ones before it and the larger after:
/// Hoare partitions around a median of three, then insertion sort of the short range left.
/// For the few dozen keys of a daily series this does about half the work of
/// `select_nth_unstable`, whose generic machinery is sized for long slices.
fn select_small(v: &mut [i64], k: usize) {
    let (mut lo, mut hi) = (0, v.len());
    while hi - lo > 6 {
        let (a, b, c) = (v[lo], v[lo + (hi - lo) / 2], v[hi - 1]);
        let pivot = a.min(b).max(a.max(b).min(c));
        // Hoare: both scans stop at the pivot's value, so neither leaves the range.
        let (mut i, mut j) = (lo, hi - 1);
        loop {
            while v[i] < pivot {
                i += 1;
            }
            while v[j] > pivot {
                j -= 1;
            }
            if i >= j {
                break;
            }
            v.swap(i, j);
            i += 1;
            j -= 1;
        }
        // v[lo..=j] <= pivot <= v[j + 1..hi]; a split that leaves all on one side ends here.
        if j + 1 >= hi {
            break;
        }
        if k <= j {
            hi = j + 1;
        } else {
            lo = j + 1;
        }
    }
    for i in lo + 1..hi {
        let x = v[i];
        let mut j = i;
        while j > lo && v[j - 1] > x {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// The largest of some keys (i64::MIN for none): four at a time, which the compiler keeps in
/// registers, for the half of every even-length median.
fn max_key(keys: &[i64]) -> i64 {
    let mut fours = keys.chunks_exact(4);
    let mut m = [i64::MIN; 4];
    for k in &mut fours {
        for (m, k) in m.iter_mut().zip(k) {
            *m = (*m).max(*k);
        }
    }
    let rest = fours.remainder().iter().copied().max().unwrap_or(i64::MIN);
    m[0].max(m[1]).max(m[2].max(m[3])).max(rest)
}

/// 1.4826 × the median absolute deviation from `center`.
pub fn robust_sd(values: impl Iterator<Item = f64>, center: f64) -> f64 {
    let mut d: Vec<f64> = values.map(|x| (x - center).abs()).collect();
    median(&mut d).map_or(0.0, |m| m * MAD_SCALE)
}

/// The median of the x (days) of points already in ascending x.
fn sorted_median(p: &[(f64, f64)]) -> f64 {
    let n = p.len();
    match (n, n % 2) {
        (0, _) => 0.0,
        (_, 1) => p[n / 2].0,
        _ => (p[n / 2 - 1].0 + p[n / 2].0) / 2.0,
    }
}

/// Scratch for the medians of one trend: keys on the stack for every median of up to `SMALL`
/// values (no allocation for a window of daily points), the values themselves past that.
struct Medians {
    keys: [i64; SMALL],
    wide: Vec<f64>,
}

impl Medians {
    fn new() -> Self {
        Self {
            keys: [0; SMALL],
            wide: Vec::new(),
        }
    }

    /// The median of `values` (0 when there are none), as `median` computes it.
    fn of(&mut self, values: impl ExactSizeIterator<Item = f64>) -> f64 {
        let n = values.len();
        if n > SMALL {
            self.wide.clear();
            self.wide.extend(values);
            return median(&mut self.wide).unwrap_or(0.0);
        }
        if n == 0 {
            return 0.0;
        }
        let keys = &mut self.keys[..n];
        for (k, x) in keys.iter_mut().zip(values) {
            *k = total_key(x);
        }
        key_median(keys)
    }
}

/// Tukey's resistant line: the slope between the medians of the first and last thirds, the
/// intercept the median of what remains. `p` is in ascending x (days), so the x medians need
/// no selection.
fn resistant_line(p: &[(f64, f64)], m: &mut Medians) -> (f64, f64) {
    let n = p.len();
    let third = n.div_ceil(3);
    let (first, last) = (&p[..third], &p[n - third..]);
    let (xl, yl) = (sorted_median(first), m.of(first.iter().map(|q| q.1)));
    let (xr, yr) = (sorted_median(last), m.of(last.iter().map(|q| q.1)));
    let b = if xr > xl { (yr - yl) / (xr - xl) } else { 0.0 };
    let a = m.of(p.iter().map(|q| q.1 - b * q.0));
    (a, b)
}

/// Whether none of these absolute residuals can be an outlier, whatever their median: the
/// largest is within the cut of a floor `t` of that median (fewer than half of them lie below
/// `t`, so both middle values are at least `t`). The cut grows with the median, so the cut
/// `trend` would compute is at least the one checked here, rounding included; None of this
/// holds with a value that is not finite, and then the median decides.
fn within_any_cut(r: impl Iterator<Item = f64> + Clone) -> bool {
    let (mut n, mut max) = (0usize, 0.0f64);
    for x in r.clone() {
        if !x.is_finite() {
            return false;
        }
        n += 1;
        max = max.max(x);
    }
    let t = max / (OUTLIER_K * MAD_SCALE) * (1.0 + 1e-9);
    if OUTLIER_K * (t * MAD_SCALE) < max {
        return false;
    }
    let below = r.filter(|x| *x < t).count();
    n > 0 && below <= (n - 1) / 2
}

/// The robust trend of points `(day, value)` sorted by day; None with fewer than 3 points.
/// It runs for every series of every cycle: two buffers of the series' length, no more.
pub fn trend(points: &[(i32, f64)]) -> Option<Trend> {
    if points.len() < 3 {
        return None;
    }
    // Up to SMALL points (a window of daily points) on the stack, more on the heap.
    let mut stack = [(0.0, 0.0); SMALL];
    let mut heap = Vec::new();
    let p: &mut [(f64, f64)] = if points.len() <= SMALL {
        &mut stack[..points.len()]
    } else {
        heap.resize(points.len(), (0.0, 0.0));
        &mut heap
    };
    for (q, &(d, y)) in p.iter_mut().zip(points) {
        *q = (f64::from(d), y);
    }
    let mut m = Medians::new();
    let (a, b) = resistant_line(p, &mut m);
    let resid = |q: &(f64, f64)| q.1 - (a + b * q.0);
    let scale = p.iter().map(|q| q.1.abs()).fold(0.0, f64::max).max(1e-12);
    let all = p.len();
    let mut used = all;
    // The residuals' spread only decides which points are outliers: when none can be, it is
    // not computed (the usual series).
    if !within_any_cut(p.iter().map(|q| resid(q).abs())) {
        let sd = m.of(p.iter().map(|q| resid(q).abs())) * MAD_SCALE;
        let cut = OUTLIER_K * sd.max(1e-9 * scale);
        // The outliers leave (order kept); with fewer than 3 left, all stay.
        let inside = |q: &(f64, f64)| resid(q).abs() <= cut;
        let n_inside = p.iter().filter(|q| inside(q)).count();
        if n_inside >= 3 && n_inside < all {
            // Keep the inside points in order at the front.
            let mut k = 0;
            for i in 0..all {
                if inside(&p[i]) {
                    p[k] = p[i];
                    k += 1;
                }
            }
            used = k;
        }
    }
    let kept = &p[..used];
    let n = kept.len() as f64;
    let mx = kept.iter().map(|q| q.0).sum::<f64>() / n;
    let my = kept.iter().map(|q| q.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for q in kept {
        sxy += (q.0 - mx) * (q.1 - my);
        sxx += (q.0 - mx) * (q.0 - mx);
    }
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let noise = m.of(kept.iter().map(|q| (q.1 - (my + slope * (q.0 - mx))).abs())) * MAD_SCALE;
    let se = noise / sxx.sqrt();
    let t = if se > 1e-12 * scale {
        slope.abs() / se
    } else if slope.abs() > 1e-12 * scale {
        f64::INFINITY
    } else {
        0.0
    };
    let mid = m.of(kept.iter().map(|q| q.1));
    let span = points[points.len() - 1].0 - points[0].0;
    let rel = if mid != 0.0 {
        slope * f64::from(span) / mid.abs()
    } else {
        0.0
    };
    let last = f64::from(points[points.len() - 1].0);
    let out = Trend {
        slope,
        level: my + slope * (last - mx),
        rel,
        noise,
        t,
        significant: t >= SIGNIFICANT_T,
        used: kept.len(),
        outliers: all - kept.len(),
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
    // At most GLITCH_HISTORY values: keys on the stack, for every series of every cycle.
    let mut buf = [0i64; GLITCH_HISTORY];
    let keys = &mut buf[..recent.len()];
    for (k, p) in keys.iter_mut().zip(recent) {
        *k = total_key(p.1);
    }
    let med = key_median(keys);
    if med <= 0.0 {
        return None;
    }
    let zero = last.1 == 0.0 && recent.iter().all(|p| p.1 > 0.0);
    // The jump's bar is at least GLITCH_K x GLITCH_MIN_SD_SHARE of the median, whatever the
    // spread: a newest point within it is no glitch, and the spread need not be computed.
    if !zero && (last.1 - med).abs() <= GLITCH_K * (GLITCH_MIN_SD_SHARE * med) {
        return None;
    }
    for (k, p) in keys.iter_mut().zip(recent) {
        *k = total_key((p.1 - med).abs());
    }
    let sd = key_median(keys) * MAD_SCALE;
    if sd > STABLE_MAX_CV * med {
        return None;
    }
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
    fn the_small_median_is_the_selected_one_to_the_bit() {
        let mut r = 0x2026_1204_u64;
        for n in 1..=SMALL + 3 {
            for _ in 0..50 {
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        r = r
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match r >> 61 {
                            0 => 0.0,
                            1 => -0.0,
                            2 => (r >> 40) as f64,
                            _ => ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1e6,
                        }
                    })
                    .collect();
                let mut a = v.clone();
                let (_, m, _) = a.select_nth_unstable_by(n / 2, f64::total_cmp);
                let hi = *m;
                let want = if n % 2 == 1 {
                    hi
                } else {
                    (a[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max) + hi) / 2.0
                };
                let got = median(&mut v.clone()).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "{v:?}");
            }
        }
    }

    /// `trend` as it was before the medians selected keys and the spread was skipped: every
    /// median by a full sort in `total_cmp` order.
    fn reference_trend(points: &[(i32, f64)]) -> Option<Trend> {
        fn med(mut v: Vec<f64>) -> f64 {
            let n = v.len();
            if n == 0 {
                return 0.0;
            }
            v.sort_by(f64::total_cmp);
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
        if points.len() < 3 {
            return None;
        }
        let mut p: Vec<(f64, f64)> = points.iter().map(|&(d, y)| (f64::from(d), y)).collect();
        let n = p.len();
        let third = n.div_ceil(3);
        let xmed = |q: &[(f64, f64)]| med(q.iter().map(|q| q.0).collect());
        let (xl, yl) = (
            xmed(&p[..third]),
            med(p[..third].iter().map(|q| q.1).collect()),
        );
        let (xr, yr) = (
            xmed(&p[n - third..]),
            med(p[n - third..].iter().map(|q| q.1).collect()),
        );
        let b = if xr > xl { (yr - yl) / (xr - xl) } else { 0.0 };
        let a = med(p.iter().map(|q| q.1 - b * q.0).collect());
        let resid = |q: &(f64, f64)| q.1 - (a + b * q.0);
        let sd = med(p.iter().map(|q| resid(q).abs()).collect()) * MAD_SCALE;
        let scale = p.iter().map(|q| q.1.abs()).fold(0.0, f64::max).max(1e-12);
        let cut = OUTLIER_K * sd.max(1e-9 * scale);
        let all = p.len();
        let inside = |q: &(f64, f64)| resid(q).abs() <= cut;
        if p.iter().filter(|q| inside(q)).count() >= 3 {
            p.retain(inside);
        }
        let k = p.len() as f64;
        let mx = p.iter().map(|q| q.0).sum::<f64>() / k;
        let my = p.iter().map(|q| q.1).sum::<f64>() / k;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for q in &p {
            sxy += (q.0 - mx) * (q.1 - my);
            sxx += (q.0 - mx) * (q.0 - mx);
        }
        if sxx == 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let noise = med(p
            .iter()
            .map(|q| (q.1 - (my + slope * (q.0 - mx))).abs())
            .collect())
            * MAD_SCALE;
        let se = noise / sxx.sqrt();
        let t = if se > 1e-12 * scale {
            slope.abs() / se
        } else if slope.abs() > 1e-12 * scale {
            f64::INFINITY
        } else {
            0.0
        };
        let mid = med(p.iter().map(|q| q.1).collect());
        let span = points[n - 1].0 - points[0].0;
        let rel = if mid != 0.0 {
            slope * f64::from(span) / mid.abs()
        } else {
            0.0
        };
        let last = f64::from(points[n - 1].0);
        let out = Trend {
            slope,
            level: my + slope * (last - mx),
            rel,
            noise,
            t,
            significant: t >= SIGNIFICANT_T,
            used: p.len(),
            outliers: all - p.len(),
        };
        (out.slope.is_finite() && out.level.is_finite() && out.rel.is_finite()).then_some(out)
    }

    fn same_bits(a: Option<Trend>, b: Option<Trend>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                let bits = |t: Trend| [t.slope, t.level, t.rel, t.noise, t.t].map(f64::to_bits);
                bits(a) == bits(b)
                    && (a.significant, a.used, a.outliers) == (b.significant, b.used, b.outliers)
            }
            _ => false,
        }
    }

    #[test]
    fn the_trend_is_the_reference_trend_to_the_bit() {
        let mut r = 0x5eed_2026_u64;
        let mut next = move || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..4000 {
            let n = 3 + (next() * 100.0) as usize;
            let level: f64 = [1.0, 1e-3, 1e6, 0.0][case % 4];
            let slope = (next() - 0.5) * 0.1 * level.max(1.0);
            let noise = [0.0, 0.001, 0.01, 0.2][(case / 4) % 4] * level.max(1.0);
            let mut pts: Vec<(i32, f64)> = (0..n)
                .map(|i| {
                    let x = i as f64;
                    // Uniform, then heavier-tailed noise; a few spikes; repeated values.
                    let e = match case % 3 {
                        0 => next() - 0.5,
                        1 => (next() - 0.5).powi(3) * 8.0,
                        _ => ((next() * 4.0).floor() - 1.5) / 3.0,
                    };
                    (738_000 + i as i32, level + slope * x + noise * e)
                })
                .collect();
            if case % 5 == 0 {
                let k = (next() * n as f64) as usize % n;
                pts[k].1 += level.max(1.0) * 50.0 * (next() - 0.3);
            }
            if case % 7 == 0 {
                // Gaps between days (still in ascending order, as `trend` takes them).
                for (i, p) in pts.iter_mut().enumerate() {
                    p.0 += (i / 3 * 2 + i * i / 7) as i32;
                }
            }
            let got = trend(&pts);
            let want = reference_trend(&pts);
            assert!(same_bits(got, want), "case {case}: {got:?} vs {want:?}");
        }
    }

    #[test]
    fn no_outlier_is_possible_only_when_the_largest_residual_is_within_any_cut() {
        let within = |v: &[f64]| within_any_cut(v.iter().copied());
        // Evenly spread: the largest is twice the median, far inside 3.5 robust SDs.
        let even: Vec<f64> = (0..30).map(|i| f64::from(i) / 29.0).collect();
        assert!(within(&even));
        assert!(within(&[0.0, 0.0, 0.0]));
        // One far point: it may be an outlier, so the median decides.
        let mut spike = even.clone();
        spike[7] = 100.0;
        assert!(!within(&spike));
        // Half the residuals at 0: the median may be 0, and then every other one is out.
        let half: Vec<f64> = (0..30).map(|i| f64::from(i % 2)).collect();
        assert!(!within(&half));
        assert!(!within(&[1.0, f64::NAN, 1.0]));
        assert!(!within(&[1.0, f64::INFINITY, 1.0]));
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
