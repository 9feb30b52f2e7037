//! From per-metric classes to one verdict, in the manner of Kayenta's
//! WeightedSumScorer, plus the reasons that explain it.

use std::collections::BTreeMap;

use verdict_sdk::output::fixed;
use verdict_sdk::{Outcome, Reason};

use crate::classify::{Class, MetricResult};
use crate::settings::Settings;

/// Metric reasons listed one by one; the rest are summarized in one line so a
/// request with hundreds of failing metrics stays within the host's limits.
const MAX_METRIC_REASONS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// 0..=100, rounded to two decimals like Kayenta.
    pub value: f64,
    /// Name of the first critical metric that failed, if any.
    pub critical: Option<String>,
    /// Half or more of the metrics had no data.
    pub too_much_nodata: bool,
}

/// Group score = 100 * Pass / (Pass + High + Low + required Nodata); groups
/// with nothing countable score 100 (Kayenta). The summary is the weighted
/// mean of the group scores; unweighted groups share what the configured
/// weights leave of 100. Weights are normalized over the groups present, so a
/// weighted group missing from the request does not cap the score below 100.
pub fn score(results: &[MetricResult], settings: &Settings) -> Score {
    let critical = results
        .iter()
        .find(|r| r.critical_failure)
        .map(|r| r.name.clone());
    let nodata = results.iter().filter(|r| r.class == Class::Nodata).count();
    let too_much_nodata = !results.is_empty() && nodata * 2 >= results.len();

    let mut groups: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in results {
        let g = groups.entry(r.group.as_str()).or_default();
        match r.class {
            Class::Pass => g.0 += 1,
            Class::High | Class::Low => g.1 += 1,
            Class::Nodata if r.data_required => g.1 += 1,
            Class::Nodata | Class::TooFew => {}
        }
    }
    let configured: f64 = settings.group_weights.values().sum();
    let unweighted = groups
        .keys()
        .filter(|g| !settings.group_weights.contains_key(**g))
        .count();
    let share = if unweighted > 0 {
        ((100.0 - configured) / unweighted as f64).max(0.0)
    } else {
        0.0
    };
    let (mut sum, mut weights) = (0.0, 0.0);
    for (name, (pass, fail)) in &groups {
        let group_score = if pass + fail == 0 {
            100.0
        } else {
            100.0 * *pass as f64 / (pass + fail) as f64
        };
        let w = settings.group_weights.get(*name).copied().unwrap_or(share);
        sum += group_score * w;
        weights += w;
    }
    let weighted = if weights > 0.0 {
        sum / weights
    } else {
        // Every weight is zero: fall back to an unweighted mean.
        let n = groups.len().max(1) as f64;
        groups
            .values()
            .map(|(p, f)| {
                if p + f == 0 {
                    100.0
                } else {
                    100.0 * *p as f64 / (p + f) as f64
                }
            })
            .sum::<f64>()
            / n
    };
    let value = if critical.is_some() || too_much_nodata {
        0.0
    } else {
        (weighted * 100.0).round() / 100.0
    };
    Score {
        value,
        critical,
        too_much_nodata,
    }
}

/// The verdict and its reasons. Rollback needs evidence of a degradation (a
/// High or Low metric): a low score made only of missing data holds instead,
/// because a metric source being down must not roll back every deploy.
pub fn decide(results: &[MetricResult], settings: &Settings) -> Outcome {
    let s = score(results, settings);
    let failed = results
        .iter()
        .filter(|r| matches!(r.class, Class::High | Class::Low))
        .count();
    let too_few = results.iter().filter(|r| r.class == Class::TooFew).count();
    let passed = results.iter().filter(|r| r.class == Class::Pass).count();
    let total = results.len();

    let mut reasons: Vec<Reason> = Vec::new();
    let not_passing: Vec<&MetricResult> =
        results.iter().filter(|r| r.class != Class::Pass).collect();
    for r in not_passing.iter().take(MAX_METRIC_REASONS) {
        reasons.push(metric_reason(r, settings));
    }
    if not_passing.len() > MAX_METRIC_REASONS {
        reasons.push(Reason::new(format!(
            "… and {} more metrics not passing",
            not_passing.len() - MAX_METRIC_REASONS
        )));
    }

    let (pass_t, marginal_t) = (settings.pass_threshold, settings.marginal_threshold);
    let v = s.value;
    let summary = |msg: String, threshold: f64| {
        let mut r = Reason::new(msg);
        r.observed = Some(v);
        r.threshold = Some(threshold);
        r
    };
    let outcome = if let Some(name) = &s.critical {
        reasons.push(summary(
            format!("score 0: critical metric {name} failed"),
            marginal_t,
        ));
        Outcome::rollback
    } else if passed + failed == 0 && too_few > 0 && !s.too_much_nodata {
        // Nothing was judged: a score of an empty set would read as 100.
        reasons.push(Reason::new(format!(
            "no score: {too_few} of {total} metrics have too few samples and none could be judged; holding"
        )));
        Outcome::hold
    } else if s.too_much_nodata && failed == 0 {
        reasons.push(summary(
            "score 0: half or more of the metrics have no data; holding for data".to_string(),
            pass_t,
        ));
        Outcome::hold
    } else if v >= pass_t && too_few > 0 {
        reasons.push(summary(
            format!("score {v:.1} meets pass threshold {pass_t} but {too_few} of {total} metrics have too few samples; holding"),
            pass_t,
        ));
        Outcome::hold
    } else if v >= pass_t {
        reasons.push(summary(
            format!("score {v:.1} meets pass threshold {pass_t}: {passed} of {total} metrics pass"),
            pass_t,
        ));
        Outcome::promote
    } else if v >= marginal_t {
        reasons.push(summary(
            format!("score {v:.1} below pass threshold {pass_t}, at least marginal {marginal_t}: holding"),
            pass_t,
        ));
        Outcome::hold
    } else if failed == 0 {
        reasons.push(summary(
            format!("score {v:.1} below marginal threshold {marginal_t} from missing data only; holding for data"),
            marginal_t,
        ));
        Outcome::hold
    } else {
        let why = if s.too_much_nodata {
            "half or more of the metrics have no data and "
        } else {
            ""
        };
        reasons.push(summary(
            format!("score {v:.1} below marginal threshold {marginal_t}: {why}{failed} of {total} metrics failed"),
            marginal_t,
        ));
        Outcome::rollback
    };
    outcome(reasons)
}

fn metric_reason(r: &MetricResult, settings: &Settings) -> Reason {
    let min = r.baseline_n.min(r.canary_n) as f64;
    match r.class {
        Class::Nodata => {
            let req = if r.data_required {
                ", data required"
            } else {
                ""
            };
            Reason::new(format!(
                "{}: no data (baseline {}, canary {} usable samples){req}",
                r.name, r.baseline_n, r.canary_n
            ))
            .on_metric(&r.name, min, Some(1.0))
        }
        Class::TooFew => Reason::new(format!(
            "{}: too few samples (baseline {}, canary {}; need {} each)",
            r.name, r.baseline_n, r.canary_n, settings.min_samples
        ))
        .on_metric(&r.name, min, Some(settings.min_samples as f64)),
        Class::High | Class::Low | Class::Pass => shift_reason(r, settings),
    }
}

/// "latency_p99_ms high: canary mean 1.25x baseline (allowed 1x), shift +30.1 ms
/// [98% CI 24.7, 36.2], p=1.2e-08".
fn shift_reason(r: &MetricResult, settings: &Settings) -> Reason {
    let word = if r.class == Class::Low { "low" } else { "high" };
    let critical = if r.critical_failure {
        "critical metric "
    } else {
        ""
    };
    let unit = r
        .unit
        .as_deref()
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    let (observed, effect) = match (r.ratio, r.canary_mean) {
        (Some(q), _) => (q, format!("canary mean {}x baseline", ratio(q))),
        (None, Some(m)) => (
            m,
            format!("canary mean {}{unit} vs a non-positive baseline", num(m)),
        ),
        (None, None) => (0.0, "no mean".to_string()),
    };
    let allowed = r.allowed;
    let mut msg = format!(
        "{critical}{} {word}: {effect} (allowed {}x)",
        r.name,
        num(allowed)
    );
    if let Some(mw) = r.stats {
        let sign = if mw.estimate > 0.0 { "+" } else { "" };
        msg.push_str(&format!(
            ", shift {sign}{}{unit} [{}% CI {}, {}], p={:.2e}",
            num(mw.estimate),
            num(settings.confidence * 100.0),
            num(mw.lower),
            num(mw.upper),
            mw.p_value
        ));
    }
    Reason::new(msg).on_metric(&r.name, observed, Some(allowed))
}

/// A mean ratio with two decimals at most: "1.28", "0.84", "5".
fn ratio(q: f64) -> String {
    let s = fixed(q, 2);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Short, readable numbers: about four significant digits, no trailing zeros.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    let s = if a == 0.0 {
        return "0".into();
    } else if !(1e-4..1e6).contains(&a) {
        return format!("{v:.3e}");
    } else if a >= 1000.0 {
        fixed(v, 0)
    } else if a >= 100.0 {
        fixed(v, 1)
    } else if a >= 1.0 {
        fixed(v, 2)
    } else {
        fixed(v, 4)
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
