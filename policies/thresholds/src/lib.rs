//! `thresholds`: static per-metric conditions in the manner of Argo Rollouts
//! analysis and Flagger's `thresholdRange`, with a minimum sample count so
//! that too little evidence holds instead of passing. See README.md.

mod rule;
mod settings;
#[cfg(test)]
mod tests;

pub use settings::{Rule, Settings};
use verdict_sdk::output;
use verdict_sdk::*;

struct Thresholds;

/// Vote over the configured rules; abstain only when the request carries none
/// of their metrics (a present metric with no samples is a hold, not absence).
pub fn decide(input: &Input, s: &Settings) -> Outcome {
    let names = s.metric_names();
    if !names.iter().any(|n| input.metric(n).is_some()) {
        return Outcome::abstain(output::clip(format!(
            "none of the configured metrics are in the request ({})",
            names.join(", ")
        )));
    }
    let mut checks: Vec<rule::Check> = s.rules.iter().map(|r| rule::check(r, s, input)).collect();
    let verdict = checks.iter().fold(Verdict::Promote, |v, (c, _)| v.max(*c));
    // Most severe first, so the reason that decided is the first one read.
    checks.sort_by_key(|(v, _)| std::cmp::Reverse(v.severity()));
    Outcome::vote(
        verdict,
        output::bounded(checks.into_iter().map(|(_, r)| r).collect()),
    )
}

impl Policy for Thresholds {
    fn describe() -> Info {
        let defaults = Settings::default();
        Info::new(
            "thresholds",
            env!("CARGO_PKG_VERSION"),
            "static min/max conditions per metric (canary, baseline or canary/baseline ratio) with a minimum sample count",
        )
        .with_metrics(&defaults.metric_names())
        .with_default_settings(&defaults)
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        verdict_sdk::prepared(&settings, Settings::parse).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        // Err only for bad settings; every input shape gets a vote or an abstention.
        let settings = verdict_sdk::prepared(&input.settings, Settings::parse)?;
        Ok(decide(&input, settings))
    }
}

verdict_sdk::export!(Thresholds);
