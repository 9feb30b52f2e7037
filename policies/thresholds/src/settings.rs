//! Settings of the thresholds policy: a list of static conditions in the
//! manner of Argo Rollouts analysis and Flagger's `thresholdRange`, plus the
//! default ruleset used when none is configured.

use serde::{Deserialize, Serialize};

/// Which samples a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Canary,
    Baseline,
    /// Canary statistic divided by the baseline statistic.
    Ratio,
}

/// The statistic a rule reduces the samples to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Mean,
    P50,
    P90,
    P95,
    P99,
    Min,
    Max,
    Last,
}

impl Stat {
    pub fn label(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Last => "last",
        }
    }
}

/// What a violated rule votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    Rollback,
    Hold,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    pub metric: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub on: Side,
    pub stat: Stat,
    /// Fewer usable samples than this (on each side a rule reads) → hold.
    pub min_samples: u32,
    pub on_fail: OnFail,
    /// Overrides the top-level `allow_missing` for this rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_missing: Option<bool>,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            metric: String::new(),
            min: None,
            max: None,
            on: Side::Canary,
            stat: Stat::Mean,
            min_samples: 5,
            on_fail: OnFail::Rollback,
            allow_missing: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub rules: Vec<Rule>,
    /// Skip (instead of hold on) rules whose metric is absent from the request.
    pub allow_missing: bool,
}

impl Default for Settings {
    fn default() -> Self {
        // The defaults check whichever of the usual metrics a request carries,
        // hence allow_missing on each: a CI job pushing only an error rate must
        // not be held forever for lack of a latency it never measures.
        Settings {
            rules: vec![
                Rule {
                    metric: "error_rate".into(),
                    max: Some(0.01),
                    allow_missing: Some(true),
                    ..Rule::default()
                },
                Rule {
                    metric: "latency_p99_ms".into(),
                    max: Some(1.2),
                    on: Side::Ratio,
                    allow_missing: Some(true),
                    ..Rule::default()
                },
            ],
            allow_missing: false,
        }
    }
}

impl Settings {
    /// Parse and validate in one step; the error is the operator-facing message.
    pub fn parse(doc: &str) -> Result<Self, String> {
        let s: Settings = verdict_sdk::parse_settings(doc)?;
        s.validate()?;
        Ok(s)
    }

    pub fn allows_missing(&self, rule: &Rule) -> bool {
        rule.allow_missing.unwrap_or(self.allow_missing)
    }

    /// Configured metric names without repeats (a metric may have several rules).
    pub fn metric_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.metric.as_str()) {
                out.push(&r.metric);
            }
        }
        out
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() {
            return Err("rules must not be empty (omit it to use the default rules)".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.metric.trim().is_empty() {
                return Err(format!("rules[{i}]: metric must not be empty"));
            }
            let at = format!("rules[{i}] ({})", r.metric);
            match (r.min, r.max) {
                (None, None) => return Err(format!("{at}: set min, max or both")),
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(format!("{at}: min {lo} is greater than max {hi}"))
                }
                _ => {}
            }
            if r.min_samples == 0 {
                return Err(format!("{at}: min_samples must be at least 1"));
            }
        }
        Ok(())
    }
}
