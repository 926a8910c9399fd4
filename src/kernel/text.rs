//! Number formatting for human-readable text: fixed rules so output stays byte-stable.

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
