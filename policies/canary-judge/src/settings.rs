//! The binding's settings: what to judge and how strictly. Unknown fields are
//! rejected so a typo ("critcal") fails at binding time instead of silently
//! judging with a default.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Metrics to judge. Empty: every request metric with baseline and canary
    /// samples, judged with the per-metric defaults (direction "increase").
    pub metrics: Vec<MetricConfig>,
    /// Percent weight per group; groups not listed share what is left of 100.
    pub group_weights: BTreeMap<String, f64>,
    /// Confidence level of the interval for the canary-baseline shift.
    pub confidence: f64,
    /// Score (0..=100) at or above which the canary is promoted.
    pub pass_threshold: f64,
    /// Score at or above which the canary is held rather than rolled back.
    pub marginal_threshold: f64,
    /// Samples needed on each side; fewer is too little evidence (hold).
    pub min_samples: usize,
    /// Fraction of the shift estimate the interval must clear (Kayenta: 0.25).
    pub tolerance: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            metrics: Vec::new(),
            group_weights: BTreeMap::new(),
            confidence: 0.98,
            pass_threshold: 95.0,
            marginal_threshold: 75.0,
            min_samples: 10,
            tolerance: 0.25,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    pub name: String,
    /// Which change of the canary is bad.
    pub direction: Direction,
    /// A critical metric that fails beyond its critical effect size zeroes the score.
    pub critical: bool,
    /// Missing data counts as a failure instead of being left out of the score.
    pub must_have_data: bool,
    pub nan_strategy: NanStrategy,
    pub effect_size: EffectSize,
    /// Scoring group; the metric's own name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub outliers: Outliers,
}

impl MetricConfig {
    /// The defaults for a metric judged without configuration.
    pub fn named(name: &str) -> Self {
        MetricConfig {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn group_name(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }
}

impl Default for MetricConfig {
    fn default() -> Self {
        MetricConfig {
            name: String::new(),
            direction: Direction::Increase,
            critical: false,
            must_have_data: false,
            nan_strategy: NanStrategy::Remove,
            effect_size: EffectSize::default(),
            group: None,
            outliers: Outliers::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A canary increase fails (latency, errors).
    Increase,
    /// A canary decrease fails (throughput, success rate).
    Decrease,
    /// Any significant change fails.
    Either,
}

impl Direction {
    pub fn watches_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }
    pub fn watches_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanStrategy {
    /// Drop missing samples (JSON null arrives as NaN).
    Remove,
    /// Count a missing sample as 0 (e.g. an error counter with no errors reported).
    Replace,
}

/// Mean-ratio thresholds (canary mean / baseline mean), as in Kayenta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EffectSize {
    /// High only when the ratio is at least this (>= 1).
    pub allowed_increase: f64,
    /// Low only when the ratio is at most this (0..=1).
    pub allowed_decrease: f64,
    /// A critical metric's High is a critical failure from this ratio on.
    pub critical_increase: f64,
    /// A critical metric's Low is a critical failure up to this ratio.
    pub critical_decrease: f64,
}

impl Default for EffectSize {
    fn default() -> Self {
        EffectSize {
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            critical_increase: 1.0,
            critical_decrease: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outliers {
    pub strategy: OutlierStrategy,
    /// Samples beyond Q1 - factor*IQR or Q3 + factor*IQR are dropped.
    pub factor: f64,
}

impl Default for Outliers {
    fn default() -> Self {
        Outliers {
            strategy: OutlierStrategy::Keep,
            factor: 3.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierStrategy {
    Keep,
    Remove,
}

/// Parse and check the settings document; errors are worded for the operator.
pub fn load(doc: &str) -> Result<Settings, String> {
    let settings: Settings = verdict_sdk::parse_settings(doc)?;
    settings
        .validate()
        .map_err(|e| format!("invalid settings: {e}"))?;
    Ok(settings)
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(format!(
                "confidence must be between 0 and 1 (exclusive), got {}",
                self.confidence
            ));
        }
        for (name, v) in [
            ("pass_threshold", self.pass_threshold),
            ("marginal_threshold", self.marginal_threshold),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} must be within 0..=100, got {v}"));
            }
        }
        if self.marginal_threshold > self.pass_threshold {
            return Err(format!(
                "marginal_threshold ({}) must not exceed pass_threshold ({})",
                self.marginal_threshold, self.pass_threshold
            ));
        }
        if self.min_samples == 0 {
            return Err("min_samples must be at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(format!(
                "tolerance must be a non-negative number, got {}",
                self.tolerance
            ));
        }
        let mut names = BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(format!("metrics[{i}]: name must not be empty"));
            }
            if !names.insert(m.name.as_str()) {
                return Err(format!("metric \"{}\" is configured twice", m.name));
            }
            m.validate()
                .map_err(|e| format!("metric \"{}\": {e}", m.name))?;
        }
        let mut total = 0.0;
        for (group, &w) in &self.group_weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!(
                    "group_weights[\"{group}\"] must be a non-negative number, got {w}"
                ));
            }
            total += w;
            // Without configured metrics the groups are the request's metric
            // names, unknown until evaluation, so only check configured ones.
            if !self.metrics.is_empty() && !self.metrics.iter().any(|m| m.group_name() == group) {
                return Err(format!(
                    "group_weights names group \"{group}\" that no metric belongs to"
                ));
            }
        }
        if total > 100.0 + 1e-9 {
            return Err(format!(
                "group_weights must sum to at most 100, got {total}"
            ));
        }
        Ok(())
    }
}

impl MetricConfig {
    fn validate(&self) -> Result<(), String> {
        let e = &self.effect_size;
        for (name, v) in [
            ("allowed_increase", e.allowed_increase),
            ("critical_increase", e.critical_increase),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(format!(
                    "effect_size.{name} is a mean ratio and must be at least 1, got {v}"
                ));
            }
        }
        for (name, v) in [
            ("allowed_decrease", e.allowed_decrease),
            ("critical_decrease", e.critical_decrease),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "effect_size.{name} is a mean ratio and must be within 0..=1, got {v}"
                ));
            }
        }
        if let Some(g) = &self.group {
            if g.trim().is_empty() {
                return Err("group must not be empty".into());
            }
        }
        if !(self.outliers.factor.is_finite() && self.outliers.factor > 0.0) {
            return Err(format!(
                "outliers.factor must be a positive number, got {}",
                self.outliers.factor
            ));
        }
        Ok(())
    }
}
