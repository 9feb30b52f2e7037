//! The decision itself: read each window's burn rate, evaluate every alert
//! pair and the remaining budget, and combine the findings by severity.

use crate::settings::{Alert, OnPage, Settings, Severity};
use verdict_sdk::output::{bounded, clip, num};
use verdict_sdk::{Input, Metric, Outcome, Reason, Verdict};

/// One window's burn rate as far as the request lets us know it.
enum Window {
    /// Neither the burn-rate nor the error-ratio metric is in the request.
    Absent,
    /// A metric is there but cannot be used; the message says why.
    Unusable(String),
    /// A burn rate, read directly or computed from an error ratio.
    Burn {
        metric: String,
        rate: f64,
        note: String,
    },
}

/// A finding contributes a verdict and explains itself; the policy's vote is
/// the most severe contribution.
struct Finding {
    verdict: Verdict,
    reason: Reason,
}

fn finding(verdict: Verdict, reason: Reason) -> Finding {
    Finding { verdict, reason }
}

/// The number a metric carries: its `value`, or, when a source delivered a
/// series instead, the latest canary sample.
fn reading(m: &Metric) -> Option<f64> {
    m.value.or_else(|| m.canary.last().copied())
}

fn read_window(input: &Input, s: &Settings, window: &str) -> Window {
    let burn_name = s.burn_rate_name(window);
    // A burn-rate metric, when present, is authoritative: it already encodes the SLO.
    if let Some(m) = input.metric(&burn_name) {
        return match reading(m) {
            Some(v) if v.is_finite() && v >= 0.0 => Window::Burn {
                metric: burn_name,
                rate: v,
                note: String::new(),
            },
            Some(v) => Window::Unusable(format!("{burn_name} is not a usable burn rate ({v})")),
            None => Window::Unusable(format!("{burn_name} has no value")),
        };
    }
    let ratio_name = s.error_ratio_name(window);
    let Some(m) = input.metric(&ratio_name) else {
        return Window::Absent;
    };
    let Some(slo) = s.slo else {
        return Window::Unusable(format!(
            "{ratio_name} needs the slo setting to be turned into a burn rate"
        ));
    };
    match reading(m) {
        Some(r) if (0.0..=1.0).contains(&r) => Window::Burn {
            metric: ratio_name,
            rate: r / (1.0 - slo),
            note: format!(" (error ratio {} at slo {})", num(r), num(slo)),
        },
        Some(r) => Window::Unusable(format!(
            "{ratio_name} is not an error ratio in [0, 1] ({r})"
        )),
        None => Window::Unusable(format!("{ratio_name} has no value")),
    }
}

/// Why the change's own version is exposed to traffic, if it is: only then is
/// the burn plausibly the change's doing and a rollback the right remedy.
fn canary_serving(input: &Input, s: &Settings) -> Option<String> {
    let d = &input.deployment;
    if let Some(t) = d.traffic_percent.filter(|t| t.is_finite() && *t > 0.0) {
        return Some(format!(
            "{} serves {}% of traffic",
            d.version_label(),
            num(t)
        ));
    }
    let stage = d.stage.as_deref()?;
    s.canary_stages
        .iter()
        .any(|c| c.eq_ignore_ascii_case(stage))
        .then(|| format!("{} is in stage {stage}", d.version_label()))
}

trait VersionLabel {
    fn version_label(&self) -> String;
}

impl VersionLabel for verdict_sdk::Deployment {
    fn version_label(&self) -> String {
        if self.version.is_empty() {
            "the new version".into()
        } else {
            format!("version {}", self.version)
        }
    }
}

/// The fix label the change carries, if any.
fn fix_label<'a>(input: &Input, s: &'a Settings) -> Option<&'a str> {
    s.fix_labels
        .iter()
        .find(|l| input.has_label(l))
        .map(String::as_str)
}

fn missing_name(s: &Settings, window: &str) -> String {
    if s.slo.is_some() {
        format!(
            "{} (or {})",
            s.burn_rate_name(window),
            s.error_ratio_name(window)
        )
    } else {
        s.burn_rate_name(window)
    }
}

fn evaluate_pair(input: &Input, s: &Settings, a: &Alert, fix: Option<&str>) -> Finding {
    let name = a.name();
    let (lm, lr, ln, sr, sn) = match (
        read_window(input, s, &a.long),
        read_window(input, s, &a.short),
    ) {
        (Window::Absent, Window::Absent) => {
            let msg = format!(
                "{name}: no data ({} and {} missing)",
                missing_name(s, &a.long),
                missing_name(s, &a.short)
            );
            return if s.require_all_pairs {
                finding(
                    Verdict::Hold,
                    Reason::new(format!("{msg}; require_all_pairs is set")),
                )
            } else {
                finding(
                    Verdict::Promote,
                    Reason::new(format!("{msg}, not evaluated")),
                )
            };
        }
        (Window::Unusable(why), _) | (_, Window::Unusable(why)) => {
            return finding(
                Verdict::Hold,
                Reason::new(format!("{name}: {why}; not enough evidence")),
            );
        }
        (Window::Burn { metric, rate, .. }, Window::Absent) => {
            return half_pair(a, &missing_name(s, &a.short), &metric, rate);
        }
        (Window::Absent, Window::Burn { metric, rate, .. }) => {
            return half_pair(a, &missing_name(s, &a.long), &metric, rate);
        }
        (
            Window::Burn {
                metric,
                rate: lr,
                note: ln,
            },
            Window::Burn {
                rate: sr, note: sn, ..
            },
        ) => (metric, lr, ln, sr, sn),
    };
    let rates = format!(
        "burn rate {} over {}{ln} and {} over {}{sn}",
        num(lr),
        a.long,
        num(sr),
        a.short
    );
    let threshold = num(a.burn_rate);
    // Strictly above, as in the workbook's alert expressions: exactly at the
    // threshold does not fire.
    if !(lr > a.burn_rate && sr > a.burn_rate) {
        let r = Reason::new(format!("{name}: {rates}, not both above {threshold}"));
        return finding(Verdict::Promote, r.on_metric(&lm, lr, Some(a.burn_rate)));
    }
    let base = format!("{name}: {rates}, both above {threshold}");
    let (verdict, msg) = match a.severity {
        Severity::Page => match (canary_serving(input, s), s.on_page) {
            (Some(why), OnPage::Rollback) => {
                (Verdict::Rollback, format!("{base}; {why}, rolling back"))
            }
            (Some(why), OnPage::Hold) => (
                Verdict::Hold,
                format!("{base}; {why}, holding (on_page is hold)"),
            ),
            (None, _) => (
                Verdict::Hold,
                format!("{base}; no canary of this change is serving traffic, holding"),
            ),
        },
        // Ticket windows (days) mostly predate the change, so a fix meant to
        // stop the slow burn must not be held back by it.
        Severity::Ticket => match fix {
            Some(label) => (
                Verdict::Promote,
                format!("{base}; change is labelled {label}, fix exemption applied"),
            ),
            None => (
                Verdict::Hold,
                format!("{base}; holding until the burn slows"),
            ),
        },
    };
    finding(
        verdict,
        Reason::new(msg).on_metric(&lm, lr, Some(a.burn_rate)),
    )
}

/// One window of a pair has data, its partner none: a pair can only fire on
/// both, so this is too little evidence either way (and usually a broken feed).
fn half_pair(a: &Alert, missing: &str, metric: &str, rate: f64) -> Finding {
    let r = Reason::new(format!(
        "{}: {missing} is missing; {metric} alone (burn rate {}) is not enough evidence",
        a.name(),
        num(rate)
    ));
    finding(Verdict::Hold, r.on_metric(metric, rate, Some(a.burn_rate)))
}

/// `None` when the budget metric is absent.
fn evaluate_budget(input: &Input, s: &Settings, fix: Option<&str>) -> Option<Finding> {
    let name = &s.budget_metric;
    let m = input.metric(name)?;
    let Some(rem) = reading(m).filter(|v| v.is_finite() && *v <= 1.0) else {
        let why = reading(m).map_or("no value".to_string(), |v| v.to_string());
        let r = Reason::new(format!(
            "{name} is not a usable budget fraction ({why}); not enough evidence"
        ));
        return Some(finding(Verdict::Hold, r));
    };
    let pct = format!("{}%", num(rem * 100.0));
    let f = if rem > s.exhausted_at {
        finding(
            Verdict::Promote,
            Reason::new(format!("error budget remaining {pct}")),
        )
    } else if let Some(label) = fix {
        let msg = format!("error budget exhausted ({pct} remaining) but the change is labelled {label}: fix exemption applied");
        finding(Verdict::Promote, Reason::new(msg))
    } else {
        let who = match s.fix_labels.is_empty() {
            true => "no change may deploy (no fix_labels configured)".to_string(),
            false => format!(
                "only changes labelled {} may deploy",
                s.fix_labels.join(", ")
            ),
        };
        let msg = format!("error budget exhausted ({pct} remaining): {who}");
        finding(Verdict::Freeze, Reason::new(msg))
    };
    Some(Finding {
        reason: f.reason.on_metric(name, rem, Some(s.exhausted_at)),
        ..f
    })
}

pub fn decide(input: &Input, s: &Settings) -> Outcome {
    let seen = s.metric_names().iter().any(|n| input.metric(n).is_some());
    if !seen {
        return Outcome::abstain(clip(format!(
            "no error-budget metrics in the request (looked for {})",
            s.metric_names().join(", ")
        )));
    }
    let fix = fix_label(input, s);
    let mut findings: Vec<Finding> = s
        .alerts
        .iter()
        .map(|a| evaluate_pair(input, s, a, fix))
        .collect();
    findings.extend(evaluate_budget(input, s, fix));
    let verdict = findings
        .iter()
        .fold(Verdict::Promote, |v, f| v.max(f.verdict));
    // Most severe first, so the reason that decided is the first one read.
    findings.sort_by_key(|f| std::cmp::Reverse(f.verdict.severity()));
    Outcome::vote(
        verdict,
        bounded(findings.into_iter().map(|f| f.reason).collect()),
    )
}
