//! Median and MAD by selection (O(n)), on scratch copies.

/// 1.4826 × MAD estimates the standard deviation of normal noise.
pub const MAD_SCALE: f64 = 1.4826;

/// The median of `v` (reordered in place); None when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (lo, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        return Some(hi);
    }
    let below = lo.iter().copied().max_by(f64::total_cmp).unwrap_or(hi);
    Some((below + hi) / 2.0)
}

/// (median, MAD) of `v`; `v` is used as scratch.
pub fn median_mad(v: &mut [f64]) -> Option<(f64, f64)> {
    let med = median(v)?;
    for x in v.iter_mut() {
        *x = (*x - med).abs();
    }
    Some((med, median(v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn mad_of_known_values() {
        // |x - 3|: 2 1 0 1 6 → median 1
        assert_eq!(median_mad(&mut [1.0, 2.0, 3.0, 4.0, 9.0]), Some((3.0, 1.0)));
    }
}
