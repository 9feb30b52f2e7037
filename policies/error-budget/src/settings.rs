//! Settings of the error-budget gate: the alert pairs, how metric names are
//! formed, the budget threshold and the exemptions. Every field has a default
//! so `{}` is a complete, sensible configuration (the SRE workbook's table).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How urgent an alert pair is. Pages are fast burns that warrant undoing the
/// change; tickets are slow burns that warrant pausing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// What a firing page pair votes while the new version serves traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPage {
    Rollback,
    Hold,
}

/// One multi-window alert: fires when the burn rate over both the long and
/// the short window is strictly above `burn_rate` (the short window makes the
/// alert reset quickly once the burn stops).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub severity: Severity,
    pub long: String,
    pub short: String,
    pub burn_rate: f64,
}

impl Alert {
    fn new(severity: Severity, long: &str, short: &str, burn_rate: f64) -> Self {
        Alert {
            severity,
            long: long.into(),
            short: short.into(),
            burn_rate,
        }
    }

    /// "page 1h/5m", used in every reason about this pair.
    pub fn name(&self) -> String {
        format!("{} {}/{}", self.severity.label(), self.long, self.short)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Alert pairs; default: the SRE workbook's four (for a 30-day SLO window).
    pub alerts: Vec<Alert>,
    /// The SLO target (e.g. 0.999). Needed only to turn error ratios into burn
    /// rates; without it only `burn_rate_*` metrics are read.
    pub slo: Option<f64>,
    /// Name of the burn-rate metric of a window; `{window}` is replaced.
    pub burn_rate_metric: String,
    /// Name of the error-ratio metric of a window; `{window}` is replaced.
    pub error_ratio_metric: String,
    /// Per-window burn-rate metric names that do not follow the template.
    pub burn_rate_overrides: BTreeMap<String, String>,
    /// Per-window error-ratio metric names that do not follow the template.
    pub error_ratio_overrides: BTreeMap<String, String>,
    /// Metric carrying the fraction of the error budget left (1 = untouched).
    pub budget_metric: String,
    /// The budget counts as exhausted when the remaining fraction is at or below this.
    pub exhausted_at: f64,
    /// Verdict of a firing page pair while a canary of the change serves traffic.
    pub on_page: OnPage,
    /// Deployment stages that mean "the new version is serving as a canary".
    pub canary_stages: Vec<String>,
    /// Change labels that let a fix through an exhausted budget (case-insensitive).
    pub fix_labels: Vec<String>,
    /// Hold when an alert pair has no data at all (default: skip it with a note).
    pub require_all_pairs: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            alerts: vec![
                Alert::new(Severity::Page, "1h", "5m", 14.4),
                Alert::new(Severity::Page, "6h", "30m", 6.0),
                Alert::new(Severity::Ticket, "1d", "2h", 3.0),
                Alert::new(Severity::Ticket, "3d", "6h", 1.0),
            ],
            slo: None,
            burn_rate_metric: "burn_rate_{window}".into(),
            error_ratio_metric: "error_ratio_{window}".into(),
            burn_rate_overrides: BTreeMap::new(),
            error_ratio_overrides: BTreeMap::new(),
            budget_metric: "error_budget_remaining".into(),
            exhausted_at: 0.0,
            on_page: OnPage::Rollback,
            canary_stages: vec!["canary".into()],
            fix_labels: ["hotfix", "fix", "revert", "rollback"]
                .map(String::from)
                .to_vec(),
            require_all_pairs: false,
        }
    }
}

const WINDOW: &str = "{window}";

/// `template.replace(WINDOW, window)`, without the substring searcher
/// `replace` sets up on every call: names are filled for every window of
/// every decision, and that set-up was a tenth of this policy's cost.
fn fill(template: &str, window: &str) -> String {
    let mut out = String::with_capacity(template.len() + window.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with(WINDOW) {
            out.push_str(window);
            rest = &rest[i + WINDOW.len()..];
        } else {
            out.push('{');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

impl Settings {
    /// Parse and validate in one step; the error is the operator-facing message.
    pub fn parse(doc: &str) -> Result<Self, String> {
        let s: Settings = verdict_sdk::parse_settings(doc)?;
        s.validate()?;
        Ok(s)
    }

    pub fn burn_rate_name(&self, window: &str) -> String {
        self.burn_rate_overrides
            .get(window)
            .cloned()
            .unwrap_or_else(|| fill(&self.burn_rate_metric, window))
    }

    pub fn error_ratio_name(&self, window: &str) -> String {
        self.error_ratio_overrides
            .get(window)
            .cloned()
            .unwrap_or_else(|| fill(&self.error_ratio_metric, window))
    }

    /// Every window any alert uses, in first-use order, without repeats
    /// (6h is both a page long window and a ticket short window by default).
    pub fn windows(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in &self.alerts {
            for w in [a.long.as_str(), a.short.as_str()] {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
        out
    }

    /// Every metric name the policy may read, for `describe` and abstain messages.
    pub fn metric_names(&self) -> Vec<String> {
        let windows = self.windows();
        let mut out: Vec<String> = windows.iter().map(|w| self.burn_rate_name(w)).collect();
        out.extend(windows.iter().map(|w| self.error_ratio_name(w)));
        out.push(self.budget_metric.clone());
        out
    }

    pub fn validate(&self) -> Result<(), String> {
        for (i, a) in self.alerts.iter().enumerate() {
            let at = format!("alerts[{i}]");
            for (field, w) in [("long", &a.long), ("short", &a.short)] {
                if w.trim().is_empty() {
                    return Err(format!("{at}: {field} window must not be empty"));
                }
            }
            if a.long == a.short {
                return Err(format!(
                    "{at}: long and short windows must differ (both are {})",
                    a.long
                ));
            }
            if !(a.burn_rate.is_finite() && a.burn_rate > 0.0) {
                return Err(format!(
                    "{at}: burn_rate must be a positive number, got {}",
                    a.burn_rate
                ));
            }
        }
        if let Some(slo) = self.slo {
            if !(slo > 0.0 && slo < 1.0) {
                return Err(format!(
                    "slo must be strictly between 0 and 1 (e.g. 0.999), got {slo}"
                ));
            }
        }
        for (field, template) in [
            ("burn_rate_metric", &self.burn_rate_metric),
            ("error_ratio_metric", &self.error_ratio_metric),
        ] {
            // Without the placeholder every window would read the same metric.
            if !template.contains(WINDOW) {
                return Err(format!("{field} must contain {WINDOW}, got {template:?}"));
            }
        }
        let windows = self.windows();
        for (field, map) in [
            ("burn_rate_overrides", &self.burn_rate_overrides),
            ("error_ratio_overrides", &self.error_ratio_overrides),
        ] {
            for (window, name) in map {
                // An override for a window no alert uses is almost surely a typo.
                if !windows.contains(&window.as_str()) {
                    return Err(format!(
                        "{field}: window {window:?} is not used by any alert"
                    ));
                }
                if name.trim().is_empty() {
                    return Err(format!(
                        "{field}: metric name for window {window:?} must not be empty"
                    ));
                }
            }
        }
        if self.budget_metric.trim().is_empty() {
            return Err("budget_metric must not be empty".into());
        }
        if !(self.exhausted_at.is_finite() && (0.0..1.0).contains(&self.exhausted_at)) {
            return Err(format!(
                "exhausted_at must be in [0, 1), got {}",
                self.exhausted_at
            ));
        }
        if self.fix_labels.iter().any(|l| l.trim().is_empty()) {
            return Err("fix_labels must not contain empty labels".into());
        }
        if self.canary_stages.iter().any(|l| l.trim().is_empty()) {
            return Err("canary_stages must not contain empty stages".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod fill_tests {
    use super::{fill, WINDOW};

    #[test]
    fn fill_replaces_like_str_replace() {
        for template in [
            "burn_rate_{window}",
            "{window}",
            "{window}_{window}",
            "{{window}}",
            "x{win{window}",
            "no placeholder",
            "{",
            "trailing {",
            "é{window}ü",
        ] {
            assert_eq!(fill(template, "1h"), template.replace(WINDOW, "1h"), "{template}");
        }
    }
}
