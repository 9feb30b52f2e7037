//! `error-budget`: a multi-window, multi-burn-rate gate in the manner of the
//! SRE workbook ("Alerting on SLOs"). Fast burns on a serving canary roll the
//! change back, slow burns hold it, and an exhausted budget freezes everything
//! but fixes. See README.md for settings, metrics and examples.

mod gate;
mod settings;
#[cfg(test)]
mod tests;

pub use settings::Settings;
use verdict_sdk::*;

struct ErrorBudget;

impl Policy for ErrorBudget {
    fn describe() -> Info {
        let defaults = Settings::default();
        let names = defaults.metric_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Info::new(
            "error-budget",
            env!("CARGO_PKG_VERSION"),
            "multi-window multi-burn-rate SLO gate: rollback or hold on fast or slow error-budget burn, freeze when the budget is spent",
        )
        .with_metrics(&names)
        .with_default_settings(&defaults)
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        verdict_sdk::prepared(&settings, Settings::parse).map(|_| ())
    }

    fn evaluate(input: Input) -> Result<Outcome, String> {
        // Err only for bad settings; every input shape gets a vote or an abstention.
        let settings = verdict_sdk::prepared(&input.settings, Settings::parse)?;
        Ok(gate::decide(&input, settings))
    }
}

verdict_sdk::export!(ErrorBudget);
