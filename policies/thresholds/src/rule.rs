//! Evaluating one rule against the request's samples.

use crate::settings::{OnFail, Rule, Settings, Side, Stat};
use verdict_sdk::output::num;
use verdict_sdk::{stats, Input, Metric, Reason, Verdict};

/// What one rule contributes to the vote: a verdict and why. The policy
/// votes the most severe contribution.
pub type Check = (Verdict, Reason);

/// Usable samples of one side, and how many were thrown away as NaN or ±inf.
struct Samples {
    values: Vec<f64>,
    dropped: usize,
}

impl Samples {
    /// Non-finite samples are dropped rather than compared: NaN compares false
    /// with everything and would otherwise slip through as a pass.
    fn clean(raw: &[f64]) -> Self {
        let values: Vec<f64> = raw.iter().copied().filter(|x| x.is_finite()).collect();
        Samples {
            dropped: raw.len() - values.len(),
            values,
        }
    }

    fn describe(&self, side: &str) -> String {
        let n = self.values.len();
        let plural = if n == 1 { "" } else { "s" };
        match self.dropped {
            0 => format!("{n} {side} sample{plural}"),
            d => format!("{n} usable {side} sample{plural} ({d} non-finite dropped)"),
        }
    }
}

/// The canary side: its samples, or a lone `value` counted as one sample.
fn canary_samples(m: &Metric) -> Samples {
    match (m.canary.is_empty(), m.value) {
        (true, Some(v)) => Samples::clean(&[v]),
        _ => Samples::clean(&m.canary),
    }
}

fn statistic(xs: &[f64], stat: Stat) -> Option<f64> {
    let q = |p| stats::quantile(xs, p);
    match stat {
        Stat::Mean => stats::mean(xs),
        Stat::P50 => q(0.5),
        Stat::P90 => q(0.9),
        Stat::P95 => q(0.95),
        Stat::P99 => q(0.99),
        Stat::Min => xs.iter().copied().reduce(f64::min),
        Stat::Max => xs.iter().copied().reduce(f64::max),
        Stat::Last => xs.last().copied(),
    }
}

/// A reason tied to the rule's metric. Non-finite numbers are left out of the
/// structured fields (JSON has no infinity); the message still states them.
fn reason(metric: &str, message: String, observed: f64, threshold: Option<f64>) -> Reason {
    let mut r = Reason::new(message);
    r.metric = Some(metric.into());
    r.observed = Some(observed).filter(|x| x.is_finite());
    r.threshold = threshold.filter(|x| x.is_finite());
    r
}

fn fail_verdict(rule: &Rule) -> Verdict {
    match rule.on_fail {
        OnFail::Rollback => Verdict::Rollback,
        OnFail::Hold => Verdict::Hold,
    }
}

/// Too little evidence is a hold naming the count and the minimum, never a pass.
fn enough(rule: &Rule, s: &Samples, side: &str) -> Result<(), Check> {
    let n = s.values.len();
    if n >= rule.min_samples as usize {
        return Ok(());
    }
    let msg = format!(
        "{}: {}, need at least {}; not enough evidence",
        rule.metric,
        s.describe(side),
        rule.min_samples
    );
    Err((
        Verdict::Hold,
        reason(&rule.metric, msg, n as f64, Some(rule.min_samples as f64)),
    ))
}

pub fn check(rule: &Rule, settings: &Settings, input: &Input) -> Check {
    let Some(m) = input.metric(&rule.metric) else {
        if settings.allows_missing(rule) {
            let msg = format!(
                "{}: not in the request, skipped (allow_missing)",
                rule.metric
            );
            return (Verdict::Promote, Reason::new(msg));
        }
        let msg = format!(
            "{}: no data (metric not in the request); not enough evidence",
            rule.metric
        );
        return (Verdict::Hold, Reason::new(msg));
    };
    match observe(rule, m) {
        Ok((observed, what)) => compare(rule, observed, &what),
        Err(c) => c,
    }
}

/// The rule's observed number and a label such as "canary p99" for messages.
fn observe(rule: &Rule, m: &Metric) -> Result<(f64, String), Check> {
    let stat = rule.stat.label();
    let one = |s: Samples, side: &str| -> Result<(f64, String), Check> {
        enough(rule, &s, side)?;
        // `enough` guarantees at least one finite sample, so the statistic exists.
        let v = statistic(&s.values, rule.stat).unwrap_or(f64::NAN);
        Ok((v, format!("{side} {stat} {}", num(v))))
    };
    match rule.on {
        Side::Canary => one(canary_samples(m), "canary"),
        Side::Baseline => one(Samples::clean(&m.baseline), "baseline"),
        Side::Ratio => {
            let (c, b) = (canary_samples(m), Samples::clean(&m.baseline));
            enough(rule, &c, "canary")?;
            enough(rule, &b, "baseline")?;
            let cv = statistic(&c.values, rule.stat).unwrap_or(f64::NAN);
            let bv = statistic(&b.values, rule.stat).unwrap_or(f64::NAN);
            if cv < 0.0 || bv < 0.0 {
                let msg = format!(
                    "{}: canary/baseline {stat} ratio ({} / {}) is undefined for negative values; not enough evidence",
                    rule.metric,
                    num(cv),
                    num(bv)
                );
                return Err((Verdict::Hold, reason(&rule.metric, msg, cv, None)));
            }
            // A zero baseline is common for sparse signals (errors): equal
            // zeros mean "no change", a positive canary an unbounded increase.
            let ratio = match (cv == 0.0, bv == 0.0) {
                (true, true) => 1.0,
                (false, true) => f64::INFINITY,
                _ => cv / bv,
            };
            let zero = if bv == 0.0 { ", baseline is 0" } else { "" };
            let what = format!(
                "canary/baseline {stat} ratio {} ({} / {}{zero})",
                num(ratio),
                num(cv),
                num(bv)
            );
            Ok((ratio, what))
        }
    }
}

/// Bounds are inclusive, as in Flagger's thresholdRange: exactly at the
/// threshold passes.
fn compare(rule: &Rule, observed: f64, what: &str) -> Check {
    let metric = &rule.metric;
    // NaN fails every comparison and would pass silently (e.g. inf / inf
    // when finite samples overflow): treat it as no usable evidence.
    if observed.is_nan() {
        let msg = format!("{metric}: {what} is not a number; not enough evidence");
        return (
            Verdict::Hold,
            reason(metric, msg, observed, rule.max.or(rule.min)),
        );
    }
    if let Some(lo) = rule.min.filter(|lo| observed < *lo) {
        let msg = format!("{metric}: {what} is below the minimum {}", num(lo));
        return (fail_verdict(rule), reason(metric, msg, observed, Some(lo)));
    }
    if let Some(hi) = rule.max.filter(|hi| observed > *hi) {
        let msg = format!("{metric}: {what} is above the maximum {}", num(hi));
        return (fail_verdict(rule), reason(metric, msg, observed, Some(hi)));
    }
    let bounds = match (rule.min, rule.max) {
        (Some(lo), Some(hi)) => format!("within [{}, {}]", num(lo), num(hi)),
        (Some(lo), None) => format!("at or above the minimum {}", num(lo)),
        (None, Some(hi)) => format!("at or below the maximum {}", num(hi)),
        (None, None) => "unbounded".into(),
    };
    let threshold = rule.max.or(rule.min);
    (
        Verdict::Promote,
        reason(
            metric,
            format!("{metric}: {what} is {bounds}"),
            observed,
            threshold,
        ),
    )
}
