//! canary-judge: Mann-Whitney U canary analysis in the manner of Kayenta's
//! NetflixACAJudge.
//!
//! Each configured metric's canary samples are compared with its baseline
//! samples (rank test + confidence interval for the shift + mean-ratio effect
//! size) and classified Pass / High / Low / Nodata; the classes are scored per
//! group, the groups weighted into one 0..100 score, and the score mapped to
//! promote / hold / rollback. See README.md for every setting.
//!
//! Layout: `settings` (the binding's settings), `mannwhitney` (the
//! statistics), `differences` (order statistics of the pairwise differences
//! the statistics need), `runs` (a side's samples sorted, as runs of equal
//! values), `classify` (one metric), `score` (verdict and reasons).

pub mod classify;
pub mod differences;
pub mod mannwhitney;
pub mod runs;
pub mod score;
pub mod settings;

use std::collections::BTreeSet;

use verdict_sdk::*;

use crate::classify::{classify, Class, MetricResult};
use crate::settings::{MetricConfig, Settings};

/// Per-metric log lines; enough to debug a decision without flooding the log.
const MAX_LOG_LINES: usize = 32;

pub struct CanaryJudge;

impl Policy for CanaryJudge {
    fn describe() -> Info {
        Info::new(
            "canary-judge",
            env!("CARGO_PKG_VERSION"),
            "Kayenta-style canary analysis: Mann-Whitney U test per metric, weighted score, promote/hold/rollback",
        )
        .with_default_settings(&Settings::default())
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        verdict_sdk::prepared(&settings, settings::load).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        let settings = verdict_sdk::prepared(&input.settings, settings::load)?;
        Ok(judge(&input, settings))
    }
}

verdict_sdk::export!(CanaryJudge);

/// The whole decision for already-validated settings. Never panics.
pub fn judge(input: &Input, settings: &Settings) -> Outcome {
    // Without configured metrics, judge every request metric that has both
    // sides, each with the defaults ("increase" is bad). A name seen twice is
    // judged once, on its first occurrence, like `Input::metric`.
    let defaults: Vec<MetricConfig>;
    let configs: &[MetricConfig] = if settings.metrics.is_empty() {
        let mut seen = BTreeSet::new();
        defaults = input
            .metrics
            .iter()
            .filter(|m| !m.baseline.is_empty() && !m.canary.is_empty())
            .filter(|m| seen.insert(m.name.as_str()))
            .map(|m| MetricConfig::named(&m.name))
            .collect();
        &defaults
    } else {
        &settings.metrics
    };

    let carried = configs.iter().any(|c| {
        input
            .metric(&c.name)
            .is_some_and(|m| !m.baseline.is_empty() || !m.canary.is_empty())
    });
    if !carried {
        return Outcome::abstain(abstain_message(settings));
    }

    let results: Vec<MetricResult> = configs
        .iter()
        .map(|c| {
            let m = input.metric(&c.name);
            let unit = m.and_then(|m| m.unit.as_deref());
            let baseline = m.map_or(&[][..], |m| m.baseline.as_slice());
            let canary = m.map_or(&[][..], |m| m.canary.as_slice());
            classify(c, unit, baseline, canary, settings)
        })
        .collect();
    for r in results.iter().take(MAX_LOG_LINES) {
        log::debug(&log_line(r));
    }
    score::decide(&results, settings)
}

fn abstain_message(settings: &Settings) -> String {
    if settings.metrics.is_empty() {
        return "no metric in the request has both baseline and canary samples".into();
    }
    let names: Vec<&str> = settings
        .metrics
        .iter()
        .take(5)
        .map(|m| m.name.as_str())
        .collect();
    let more = if settings.metrics.len() > 5 {
        ", …"
    } else {
        ""
    };
    format!(
        "none of the configured metrics ({}{more}) has baseline or canary samples",
        names.join(", ")
    )
}

fn log_line(r: &MetricResult) -> String {
    let class = match r.class {
        Class::Pass => "pass",
        Class::High => "high",
        Class::Low => "low",
        Class::Nodata => "nodata",
        Class::TooFew => "too few samples",
    };
    let mut line = format!(
        "{} [{}]: {class} (baseline n={}, canary n={})",
        r.name, r.group, r.baseline_n, r.canary_n
    );
    if let Some(s) = r.shortcut {
        line.push_str(&format!(" {s:?}"));
    }
    if let Some(mw) = r.stats {
        line.push_str(&format!(
            " U={} p={:.3e} shift={} ci=[{}, {}]",
            mw.u,
            mw.p_value,
            score::num(mw.estimate),
            score::num(mw.lower),
            score::num(mw.upper)
        ));
    }
    if let Some(q) = r.ratio {
        line.push_str(&format!(" ratio={}", score::num(q)));
    }
    line
}

#[cfg(test)]
mod tests;
