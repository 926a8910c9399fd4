//! Number formatting for human-readable text: fixed rules so output stays byte-stable.

use crate::contract::catalog::Unit;

/// 430000 -> "430,000"; 6.25 -> "6.25"; 0.2614 -> "0.261".
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        let r = x.round() as i64;
        // The digits, least significant first, on the stack (a u64 has at most 20).
        let mut digits = [0u8; 20];
        let (mut n, mut len) = (r.unsigned_abs(), 0);
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut out = String::with_capacity(len + len / 3 + 1);
        if r < 0 {
            out.push('-');
        }
        for i in (0..len).rev() {
            if i + 1 < len && (i + 1).is_multiple_of(3) {
                out.push(',');
            }
            out.push(char::from(digits[i]));
        }
        out
    } else if a >= 1.0 {
        trim(format!("{x:.2}"))
    } else {
        trim(format!("{x:.3}"))
    }
}

/// A fraction as a whole percentage: 0.523 -> "52%".
pub fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A fraction as a percentage with one decimal: 0.0153 -> "1.5%".
pub fn pct_1(x: f64) -> String {
    let mut s = trim(format!("{:.1}", x * 100.0));
    s.push('%');
    s
}

/// A value in its metric's unit: fractions and percents as "25.8%", hours "6.6 h", days,
/// months; counts, currency and ratios as numbers.
pub fn qty(x: f64, unit: Option<Unit>) -> String {
    match unit {
        Some(Unit::Fraction) => pct_1(x),
        Some(Unit::Percent) => pct_1(x / 100.0),
        Some(Unit::Hours) => format!("{} h", num(x)),
        Some(Unit::Days) => format!("{} days", num(x)),
        Some(Unit::Months) => format!("{} months", num(x)),
        _ => num(x),
    }
}

/// Trailing zeros of the decimals dropped, and the point with them (in place).
fn trim(mut s: String) -> String {
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(num(430000.0), "430,000");
        assert_eq!(num(-1234.4), "-1,234");
        assert_eq!(num(6.25), "6.25");
        assert_eq!(num(6.0), "6");
        assert_eq!(num(0.2614), "0.261");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(-999.6), "-1,000");
        assert_eq!(num(123_456.0), "123,456");
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(-12_345_678.4), "-12,345,678");
        assert_eq!(num(1e30), "9,223,372,036,854,775,807");
        assert_eq!(pct_1(0.0153), "1.5%");
        assert_eq!(pct_1(0.2), "20%");
        assert_eq!(pct(0.523), "52%");
    }
}
