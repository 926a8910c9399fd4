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
        let digits = r.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if r < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
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
    trim(format!("{:.1}", x * 100.0)) + "%"
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

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
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
        assert_eq!(pct(0.523), "52%");
    }
}
