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
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
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
