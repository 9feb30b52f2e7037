//! Settings validation, describe, formatting.

use super::{healthy, input, with};
use crate::*;

#[test]
fn settings_are_validated() {
    let bad = [
        (r#"{"slo":1}"#, "slo must be strictly between 0 and 1"),
        (r#"{"slo":0}"#, "slo must be strictly between 0 and 1"),
        (
            r#"{"alerts":[{"severity":"page","long":"1h","short":"5m","burn_rate":0}]}"#,
            "burn_rate must be a positive",
        ),
        (
            r#"{"alerts":[{"severity":"page","long":"1h","short":"1h","burn_rate":2}]}"#,
            "must differ",
        ),
        (
            r#"{"alerts":[{"severity":"page","long":"","short":"5m","burn_rate":2}]}"#,
            "long window must not be empty",
        ),
        (
            r#"{"alerts":[{"severity":"urgent","long":"1h","short":"5m","burn_rate":2}]}"#,
            "unknown variant",
        ),
        (r#"{"on_page":"freeze"}"#, "unknown variant"),
        (r#"{"burn_rate_metric":"burn"}"#, "must contain {window}"),
        (
            r#"{"burn_rate_overrides":{"4h":"x"}}"#,
            "not used by any alert",
        ),
        (r#"{"exhausted_at":1}"#, "exhausted_at must be in [0, 1)"),
        (
            r#"{"fix_labels":[""]}"#,
            "fix_labels must not contain empty",
        ),
        (r#"{"slos":0.99}"#, "unknown field"),
        ("[1,2]", "invalid settings"),
    ];
    for (doc, needle) in bad {
        let err = ErrorBudget::validate_settings(doc.into()).expect_err(doc);
        assert!(err.contains(needle), "{doc}: {err}");
        assert!(ErrorBudget::evaluate(with(input(healthy()), doc)).is_err());
    }
    for ok in ["", "{}", r#"{"slo":0.999,"on_page":"hold","alerts":[]}"#] {
        ErrorBudget::validate_settings(ok.into()).expect(ok);
    }
}

#[test]
fn describe_exposes_defaults_and_metrics() {
    let info = ErrorBudget::describe();
    assert_eq!(info.name, "error-budget");
    let back: Settings = serde_json::from_str(&info.default_settings).unwrap();
    assert_eq!(back, Settings::default());
    for m in [
        "burn_rate_1h",
        "burn_rate_5m",
        "burn_rate_3d",
        "error_ratio_30m",
        "error_budget_remaining",
    ] {
        assert!(info.metrics.iter().any(|x| x == m), "{m}");
    }
    let n6h = info.metrics.iter().filter(|m| *m == "burn_rate_6h").count();
    assert_eq!(n6h, 1);
}

#[test]
fn numbers_are_readable() {
    use verdict_sdk::output::num;
    assert_eq!(num(14.4), "14.4");
    assert_eq!(num(15.0), "15");
    assert_eq!(num(0.00015), "0.00015");
    assert_eq!(num(1234.5678), "1235");
    assert_eq!(num(0.0), "0");
    assert_eq!(num(f64::NAN), "NaN");
    assert_eq!(num(-2.5), "-2.5");
}

#[test]
fn output_stays_within_host_limits() {
    use verdict_sdk::output::{MAX_MESSAGE, MAX_REASONS};
    let alerts: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"severity":"ticket","long":"{}h","short":"{i}m","burn_rate":1}}"#,
                i + 1
            )
        })
        .collect();
    let s = format!(r#"{{"alerts":[{}]}}"#, alerts.join(","));
    let o =
        ErrorBudget::evaluate(with(input(vec![Metric::value("burn_rate_1h", 1.0)]), &s)).unwrap();
    let Outcome::Vote(d) = o else {
        panic!("abstained")
    };
    assert_eq!(d.verdict, Verdict::Hold);
    assert_eq!(d.reasons.len(), MAX_REASONS);
    assert!(d.reasons.iter().all(|r| r.message.len() <= MAX_MESSAGE));
    let long = format!("{}{{window}}", "x".repeat(5000));
    let s = format!(r#"{{"burn_rate_metric":"{long}"}}"#);
    let o = ErrorBudget::evaluate(with(input(vec![]), &s)).unwrap();
    assert!(o.messages().len() <= MAX_MESSAGE);
}
