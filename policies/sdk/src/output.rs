//! Shaping what goes back to the host: readable numbers, and reasons kept
//! within the host's default output limits (64 reasons, 4096 bytes each),
//! which a long rule list or a huge metric name could otherwise exceed and
//! turn a decision into a policy error.

use crate::Reason;

/// Reasons kept at most; the rest are summarised in one extra line.
pub const MAX_REASONS: usize = 32;
/// Longest message sent, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// Numbers for humans: about four significant digits, no trailing zeros.
pub fn num(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = fixed(x, decimals);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `format!("{x:.decimals$}")`, the same text at a fraction of the cost
/// (see `fast_fixed`): for numbers printed on every decision.
pub fn fixed(x: f64, decimals: usize) -> String {
    fast_fixed(x, decimals).unwrap_or_else(|| format!("{x:.decimals$}"))
}

/// `format!("{x:.decimals$}")` for the common case, by integer arithmetic
/// (`decimals <= 12`); `None` where it could differ, for the caller to
/// format exactly.
///
/// Why: formatting with a precision takes the exact (big-number) path of
/// the float formatter, and policies format a few numbers per decision in
/// a sandbox that charges for every instruction.
///
/// The formatter rounds the exact decimal value of `x * 10^decimals` to the
/// nearest integer (ties to even). The product computed in floating point
/// is within half an ulp of the exact one, so when it lies more than two
/// ulps from a tie both round to the same integer. Near a tie, or past
/// 2^53 where the integer is no longer exact, this gives up.
fn fast_fixed(x: f64, decimals: usize) -> Option<String> {
    const POW10: [f64; 13] = [
        1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    ];
    let scaled = x.abs() * *POW10.get(decimals)?;
    if !(scaled < 9_007_199_254_740_992.0) {
        return None;
    }
    let ulp = f64::from_bits(scaled.to_bits() + 1) - scaled;
    let frac = scaled - scaled.floor();
    if (frac - 0.5).abs() <= 2.0 * ulp {
        return None;
    }
    let digits = (scaled.round() as u64).to_string();
    let mut out = String::with_capacity(digits.len() + decimals + 3);
    if x.is_sign_negative() {
        out.push('-');
    }
    if decimals == 0 {
        out.push_str(&digits);
    } else if digits.len() > decimals {
        let (int, frac) = digits.split_at(digits.len() - decimals);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decimals - digits.len()));
        out.push_str(&digits);
    }
    Some(out)
}

/// Cut a message to `MAX_MESSAGE` bytes on a character boundary.
pub fn clip(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Clip every message and keep the first `MAX_REASONS - 1` reasons (callers
/// sort the deciding ones first), summarising the rest.
pub fn bounded(reasons: Vec<Reason>) -> Vec<Reason> {
    let total = reasons.len();
    let mut out: Vec<Reason> = reasons
        .into_iter()
        .take(if total > MAX_REASONS {
            MAX_REASONS - 1
        } else {
            MAX_REASONS
        })
        .map(|mut r| {
            r.message = clip(r.message);
            r
        })
        .collect();
    if total > out.len() {
        out.push(Reason::new(format!(
            "... and {} more reasons",
            total - out.len()
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_about_four_significant_digits() {
        let cases = [
            (1.23456, "1.235"),
            (-0.000123456, "-0.0001235"),
            (130.0, "130"),
            (1e15, "1000000000000000"),
            (-0.0, "-0"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(num(x), want, "{x:e}");
        }
    }

    #[test]
    fn fixed_formats_exactly_as_the_formatter_does() {
        // Every magnitude the policies print, random mantissas, and values
        // on and next to ties (k + 0.5 at the printed precision).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for _ in 0..200_000 {
            let r = next();
            let exp = (r % 40) as i32 - 20;
            let mantissa = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let sign = if r & (1 << 40) != 0 { -1.0 } else { 1.0 };
            let x = sign * (1.0 + 9.0 * mantissa) * 10f64.powi(exp);
            for x in [
                x,
                (x * 1e3).round() / 1e3 + 0.0005,
                f64::from_bits(x.to_bits() + 1),
            ] {
                for decimals in 0..=12 {
                    if let Some(fast) = fast_fixed(x, decimals) {
                        assert_eq!(fast, format!("{x:.decimals$}"), "{x:e} at {decimals}");
                        checked += 1;
                    }
                }
            }
        }
        for (x, d) in [
            (0.5, 0),
            (2.5, 0),
            (1000.5, 0),
            (0.125, 2),
            (1.0005, 3),
            (f64::NAN, 2),
            (f64::INFINITY, 1),
            (1e300, 3),
            (0.1, 20),
        ] {
            let want = format!("{x:.d$}");
            assert!(fast_fixed(x, d).is_none_or(|f| f == want), "{x} at {d}");
            assert_eq!(fixed(x, d), want);
        }
        assert!(
            checked > 5_000_000,
            "the fast path is the common case: {checked}"
        );
    }

    #[test]
    fn clip_cuts_on_a_char_boundary() {
        assert_eq!(clip("short".into()), "short");
        let exact = "x".repeat(MAX_MESSAGE);
        assert_eq!(clip(exact.clone()), exact);
        let long = clip("é".repeat(MAX_MESSAGE));
        assert!(long.len() <= MAX_MESSAGE, "{}", long.len());
        assert!(long.ends_with("..."));
    }

    #[test]
    fn bounded_keeps_at_most_max_reasons() {
        let few: Vec<Reason> = (0..MAX_REASONS)
            .map(|i| Reason::new(i.to_string()))
            .collect();
        assert_eq!(bounded(few).len(), MAX_REASONS);
        let many: Vec<Reason> = (0..40).map(|i| Reason::new(i.to_string())).collect();
        let out = bounded(many);
        assert_eq!(out.len(), MAX_REASONS);
        assert_eq!(out[MAX_REASONS - 2].message, "30");
        assert_eq!(out[MAX_REASONS - 1].message, "... and 9 more reasons");
    }
}
