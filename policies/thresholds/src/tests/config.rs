//! Settings validation, describe, output limits and hostile inputs.

use super::{assert_vote, canary, input, run, with};
use crate::*;

#[test]
fn settings_are_validated() {
    let bad = [
        (r#"{"rules":[]}"#, "rules must not be empty"),
        (
            r#"{"rules":[{"metric":"m"}]}"#,
            "rules[0] (m): set min, max or both",
        ),
        (
            r#"{"rules":[{"metric":"m","min":2,"max":1}]}"#,
            "min 2 is greater than max 1",
        ),
        (
            r#"{"rules":[{"metric":"m","max":1,"min_samples":0}]}"#,
            "min_samples must be at least 1",
        ),
        (
            r#"{"rules":[{"max":1}]}"#,
            "rules[0]: metric must not be empty",
        ),
        (
            r#"{"rules":[{"metric":"m","max":1,"stat":"p42"}]}"#,
            "unknown variant",
        ),
        (
            r#"{"rules":[{"metric":"m","max":1,"on":"control"}]}"#,
            "unknown variant",
        ),
        (
            r#"{"rules":[{"metric":"m","max":1,"on_fail":"freeze"}]}"#,
            "unknown variant",
        ),
        (r#"{"rules":[{"metric":"m","maximum":1}]}"#, "unknown field"),
        (r#"{"rule":[]}"#, "unknown field"),
        (
            r#"{"rules":[{"metric":"m","max":1,"min_samples":-1}]}"#,
            "invalid settings",
        ),
    ];
    for (doc, needle) in bad {
        let err = Thresholds::validate_settings(doc.into()).expect_err(doc);
        assert!(err.contains(needle), "{doc}: {err}");
        assert!(Thresholds::evaluate(with(input(vec![canary("m", &[1.0])]), doc)).is_err());
    }
    for ok in ["", "{}", r#"{"allow_missing":true}"#] {
        Thresholds::validate_settings(ok.into()).expect(ok);
    }
}

#[test]
fn describe_exposes_defaults_and_metrics() {
    let info = Thresholds::describe();
    assert_eq!(info.name, "thresholds");
    assert_eq!(
        info.metrics,
        vec!["error_rate".to_string(), "latency_p99_ms".to_string()]
    );
    let back: Settings = serde_json::from_str(&info.default_settings).unwrap();
    assert_eq!(back, Settings::default());
    assert!(
        !info.default_settings.contains("null"),
        "{}",
        info.default_settings
    );
}

#[test]
fn numbers_are_readable() {
    use verdict_sdk::output::num;
    assert_eq!(num(0.0014), "0.0014");
    assert_eq!(num(1.2), "1.2");
    assert_eq!(num(130.0), "130");
    assert_eq!(num(f64::INFINITY), "inf");
}

#[test]
fn output_stays_within_host_limits() {
    let rules: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"metric":"m{i}","max":1}}"#))
        .collect();
    let s = format!(r#"{{"rules":[{}]}}"#, rules.join(","));
    let mut ms: Vec<Metric> = (0..40)
        .map(|i| canary(&format!("m{i}"), &[0.0; 5]))
        .collect();
    ms[39] = canary("m39", &[2.0; 5]);
    let o = run(with(input(ms), &s));
    let Outcome::Vote(d) = o else {
        panic!("abstained")
    };
    assert_eq!(d.verdict, Verdict::Rollback);
    assert_eq!(d.reasons.len(), output::MAX_REASONS);
    assert_eq!(d.reasons[0].metric.as_deref(), Some("m39"));
    assert_eq!(d.reasons[31].message, "... and 9 more reasons");
    let long = "é".repeat(3000);
    let s = format!(r#"{{"rules":[{{"metric":"{long}","max":1}}]}}"#);
    let o = run(with(input(vec![canary(&long, &[0.0; 5])]), &s));
    assert!(
        o.messages().len() <= output::MAX_MESSAGE,
        "{}",
        o.messages().len()
    );
    assert!(o.messages().ends_with("..."));
}

#[test]
fn overflowing_statistics_never_pass_silently() {
    // Each sample is finite, but the means overflow to inf and inf / inf is NaN.
    let m = Metric::samples("latency_p99_ms", &[1e308; 5], &[1e308; 5]);
    assert_vote(&run(input(vec![m])), Verdict::Hold, "is not a number");
}

#[test]
fn no_panics_on_hostile_values() {
    let weird = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1e308,
        -1e308,
        5e-324,
        -1.0,
    ];
    let settings = [
        "{}",
        r#"{"rules":[{"metric":"m","on":"ratio","stat":"p99","min":0.5,"max":2,"min_samples":1}]}"#,
        r#"{"rules":[{"metric":"m","on":"baseline","stat":"last","min":0,"min_samples":1}]}"#,
        r#"{"rules":[{"metric":"m","stat":"min","max":0,"min_samples":1}]}"#,
    ];
    for s in settings {
        for a in weird {
            for b in weird {
                for name in ["m", "error_rate", "latency_p99_ms"] {
                    let mut ms = vec![
                        Metric::samples(name, &[a, b], &[b, a]),
                        Metric::value(name, a),
                    ];
                    let _ = run(with(input(ms.clone()), s));
                    ms[0].value = Some(b);
                    ms[0].canary.clear();
                    let _ = run(with(input(ms), s));
                }
            }
        }
    }
}
